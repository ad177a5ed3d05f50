"""S3 and SQS for the function's containers: moto's server on the Docker bridge's host address,
a network the test run itself created, so `sam local` functions reach it and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

from tests.support.runtime_emulator import free_port


@dataclass
class LocalAws:
    server: ThreadedMotoServer
    endpoint: str

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self.server.stop()


def start_local_aws(address: str) -> LocalAws:
    port = free_port()
    server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
    server.start()
    return LocalAws(server, f"http://{address}:{port}")
