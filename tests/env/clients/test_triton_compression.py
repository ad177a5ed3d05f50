"""The Triton HTTP client (tritonclient[http], written by others) with its compression options against
`python -m handler serve`: `request_compression_algorithm` gzip and deflate (the client compresses the whole
body; the binary header length counts it uncompressed) and `response_compression_algorithm` gzip and deflate,
on binary and JSON tensor data. Every answer is training's; an answer of 1 KiB or more comes gzip'd when the
client asks for gzip, and as it is when it asks for deflate (we answer gzip only, which HTTP allows).
"""

from __future__ import annotations

import json
import subprocess
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support import zoo
from tests.support.clients import clients_python, serving
from tests.support.golden_requests import rows_of

SCRIPT = Path(__file__).parent / "triton_compression_script.py"
REQUEST = (None, "gzip", "deflate")
RESPONSE = (None, "gzip", "deflate")
# Every pairing but neither (the plain client is tests/env/clients/test_triton_client.py), binary and JSON data.
MODES = [(rq, rs, b) for rq, rs in product(REQUEST, RESPONSE) if rq or rs for b in (True, False)]
BIG = "digits|big"  # 32 images: answers of 1,280 bytes of binary FP32 outputs, or about 7 KB as JSON


def _cases(name: str) -> list[dict[str, Any]]:
    """Golden cases as the v2 tensors a client builds from them (those with a plain v2 form)."""
    out = []
    for case in zoo.cases(name):
        body = zoo.v2_body(name, rows_of(name, case))
        if body is not None:
            out.append({"case": case, "inputs": body["inputs"]})
    if name == "digits":  # the 8 images four times over, with training's answers for them four times over
        base = next(c for c in zoo.cases(name) if c["name"] == "batch_of_8")
        tiled = {k: np.tile(v, (4, 1)).tolist() for k, v in base["expected"].items()}
        body = zoo.v2_body(name, rows_of(name, base) * 4)
        assert body is not None
        out.append({"case": {**base, "name": BIG, "expected": tiled}, "inputs": body["inputs"]})
    return out


def _key(case: dict[str, Any], request: str | None, response: str | None, binary: bool) -> str:
    return f"{case['name']}|{request}|{response}|{'binary' if binary else 'json'}"


def _run_client(url: str, name: str, cases: list[dict[str, Any]]) -> dict[str, Any]:
    job = {
        "url": url,
        "model": name,
        "version": zoo.manifest(name)["model"]["version"],
        "output_names": zoo.output_names(name),
        "cases": [
            {
                "name": _key(c["case"], rq, rs, b),
                "inputs": c["inputs"],
                "binary": b,
                "request_compression": rq,
                "response_compression": rs,
            }
            for c in cases
            for rq, rs, b in MODES
        ],
    }
    done = subprocess.run(
        [str(clients_python()), str(SCRIPT)], input=json.dumps(job), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, f"the Triton client failed:\n{done.stderr[-3000:]}"
    seen: dict[str, Any] = json.loads(done.stdout)
    return seen


@pytest.mark.parametrize("name", zoo.MODELS)
def test_the_triton_client_compressing_either_way_gets_golden_answers(name: str) -> None:
    cases = _cases(name)
    assert len(cases) >= 5, f"{name} has only {len(cases)} golden cases with a v2 form"
    with serving(zoo.model_dir(name)) as url:
        seen = _run_client(url, name, cases)
    encodings = set()
    for c in cases:
        for rq, rs, b in MODES:
            how = f"tritonclient (request {rq}, response {rs}, {'binary' if b else 'JSON'} data)"
            got = seen[_key(c["case"], rq, rs, b)]
            tensors = [{"name": n, "shape": t["shape"], "data": t["data"]} for n, t in got["outputs"].items()]
            zoo.check_v2(name, c["case"], {"outputs": tensors}, how)
            encodings.add((rs, got["content_encoding"]))
            if c["case"]["name"] == BIG:
                want = "gzip" if rs == "gzip" else None
                assert got["content_encoding"] == want, f"{BIG} via {how}: Content-Encoding {got['content_encoding']}"
    assert encodings <= {(None, None), ("gzip", None), ("gzip", "gzip"), ("deflate", None)}, encodings
