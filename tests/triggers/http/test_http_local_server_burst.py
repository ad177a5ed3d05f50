"""`make run` holds a burst: httpx's AsyncClient, with its default connection pool, sends 128 requests at once
to `python -m handler serve` and every one gets training's answer.

With socketserver's listen backlog of 5, such a burst lost some of its requests (httpx's ReadError) or
stalled them for a second (a dropped SYN, sent again).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from handler.local_server import LocalServer
from tests.support import zoo
from tests.support.clients import serving

BURST = 128
# Generous: the answers come one at a time (one invocation at a time, as in one Lambda execution environment),
# and a loaded machine may take tens of milliseconds for each; the test measures what it needs.
TIMEOUT = httpx.Timeout(120.0)


async def _burst(url: str) -> list[tuple[dict[str, Any], int | str, Any]]:
    cases = zoo.cases("churn")
    async with httpx.AsyncClient(base_url=f"http://{url}", timeout=TIMEOUT) as client:  # the default pool limits

        async def one(i: int) -> tuple[dict[str, Any], int | str, Any]:
            case = cases[i % len(cases)]
            try:
                response = await client.post("/v1/models/churn:predict", json=case["request"])
            except httpx.HTTPError as exc:
                return case, type(exc).__name__, repr(exc)
            return case, response.status_code, response.text

        return await asyncio.gather(*(one(i) for i in range(BURST)))


def test_the_listen_backlog_holds_a_burst() -> None:
    assert LocalServer.request_queue_size >= BURST


def test_128_concurrent_requests_from_httpx_all_get_golden_answers() -> None:
    with serving(zoo.model_dir("churn")) as url:
        started = time.monotonic()
        results = asyncio.run(_burst(url))
        took = time.monotonic() - started
    failed = [(case["name"], status, str(text)[:200]) for case, status, text in results if status != 200]
    assert not failed, f"{len(failed)} of {BURST} requests failed in {took:.1f} s: {failed[:5]}"
    for case, _, text in results:
        zoo.check_v1("churn", case, json.loads(text), f"httpx AsyncClient, {BURST} at once")
