"""Security tests reuse the fault fixtures: the local S3 server, the app started with chosen settings."""

from tests.faults.conftest import (  # noqa: F401
    bucket,
    moto_endpoint,
    s3,
    start_app,
)
