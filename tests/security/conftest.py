"""Security tests use the shared fault fixtures (the local S3 server, the app started with chosen settings)."""
