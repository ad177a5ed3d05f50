"""Run by `.venv-clients`' Python (kserve installed): the KServe SDK's REST client, v1 protocol, against our server.

Reads {"url", "model", "cases": [{"name", "request"}]} on stdin (each request a TF Serving v1 body, as a
KServe v1 client sends it), writes what the client saw as JSON on stdout: liveness, the model's readiness
(and an unknown model's), and each case's answer.
"""

import asyncio
import json
import sys

import httpx
from kserve import InferenceRESTClient, RESTConfig


async def _status(call) -> dict:
    """A call that must fail: the HTTP status the client raised with."""
    try:
        answer = await call
    except httpx.HTTPStatusError as exc:
        return {"status": exc.response.status_code, "body": exc.response.json()}
    return {"status": None, "answer": answer}


async def main() -> None:
    job = json.load(sys.stdin)
    base_url, model = f"http://{job['url']}", job["model"]
    client = InferenceRESTClient(RESTConfig(protocol="v1", timeout=120))
    try:
        seen = {
            "live": await client.is_server_live(base_url),
            "model_ready": await client.is_model_ready(base_url, model),
            "unknown_model_ready": await _status(client.is_model_ready(base_url, "no-such-model")),
            "cases": {},
        }
        for case in job["cases"]:
            seen["cases"][case["name"]] = await client.infer(base_url, case["request"], model_name=model)
    finally:
        await client.close()
    json.dump(seen, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
