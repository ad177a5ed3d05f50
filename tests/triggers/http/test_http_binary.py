"""Golden requests sent with the Open Inference Protocol's binary tensor data extension, as Triton's clients
send them by default, through the real `lambda_handler` of every HTTP trigger, on both runtimes.

The bodies are framed here from the extension's documentation, not by the server's code: a JSON header, then
each tensor's raw little-endian bytes; a BYTES element is a 4-byte little-endian length, then its bytes. The
strings have different lengths (and some are empty), so a length read with the wrong byte order cannot pass.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np
import pytest

from tests.conftest import LambdaContext
from tests.support import zoo
from tests.support.functions import RUNTIMES, Functions, infer_path
from tests.support.golden_requests import rows_of
from tests.support.http_events import HTTP_TRIGGERS, body_of, header, http_event

HEADER_LENGTH = "Inference-Header-Content-Length"
# The extension's raw layout of the datatypes these models take and answer: little-endian.
RAW: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"), "INT64": np.dtype("<i8")}
# reviews: a string [8] input and a float; churn: three string categories among nine numbers.
MODELS = ("reviews", "churn")


def _raw_bytes(value: Any) -> Any:
    """A TF Serving {"b64": ...} leaf as the bytes it stands for (binary BYTES carry raw bytes)."""
    if isinstance(value, dict) and list(value) == ["b64"]:
        return base64.b64decode(value["b64"])
    if isinstance(value, dict):
        return {k: _raw_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_raw_bytes(v) for v in value]
    return value


def _tensor_bytes(datatype: str, data: list[Any]) -> bytes:
    if datatype == "BYTES":
        elements = [v if isinstance(v, bytes) else str(v).encode() for v in data]
        return b"".join(struct.pack("<I", len(e)) + e for e in elements)
    return np.asarray(data, dtype=RAW[datatype]).tobytes()


def binary_body(body: dict[str, Any], binary_output: bool) -> tuple[bytes, int]:
    """(body, JSON header length): every input tensor's data moved out of the JSON into raw bytes."""
    inputs, chunks = [], []
    for t in body["inputs"]:
        raw = _tensor_bytes(t["datatype"], t["data"])
        chunks.append(raw)
        inputs.append({k: v for k, v in t.items() if k != "data"} | {"parameters": {"binary_data_size": len(raw)}})
    head = json.dumps({"id": body["id"], "inputs": inputs, "parameters": {"binary_data_output": binary_output}})
    return head.encode() + b"".join(chunks), len(head.encode())


def _byte_lengths(body: dict[str, Any]) -> set[int]:
    return {
        len(v if isinstance(v, bytes) else str(v).encode())
        for t in body["inputs"]
        if t["datatype"] == "BYTES"
        for v in t["data"]
    }


def _send(functions: Functions, model: str, runtime: str, trigger: str, raw: bytes, n: int) -> dict[str, Any]:
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(n)}
    event = http_event(trigger, "POST", infer_path(model), "", headers=headers)
    event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    response: dict[str, Any] = functions.handler(model, runtime)(event, LambdaContext())
    return response


def _answer(response: dict[str, Any], what: str) -> dict[str, Any]:
    """The infer answer, its binary outputs decoded here from their documented layout."""
    assert response["statusCode"] == 200, f"{what}: {response['statusCode']} {str(response.get('body'))[:500]}"
    length = header(response, HEADER_LENGTH)
    if length is None:
        answer: dict[str, Any] = body_of(response)
        return answer
    assert response.get("isBase64Encoded"), f"{what}: a binary answer must be base64 in the proxy result"
    raw = base64.b64decode(response["body"])
    answer = json.loads(raw[: int(length)])
    pos = int(length)
    for t in answer["outputs"]:
        size = t["parameters"]["binary_data_size"]
        assert "data" not in t, f"{what}: output {t['name']} has both JSON data and binary data"
        t["data"] = np.frombuffer(raw[pos : pos + size], dtype=RAW[t["datatype"]]).tolist()
        pos += size
    assert pos == len(raw), f"{what}: {len(raw) - pos} bytes after the outputs' binary data"
    return answer


@pytest.mark.parametrize("binary_output", [False, True], ids=["json_out", "binary_out"])
@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("model", MODELS)
def test_golden_cases_with_binary_bytes_tensors_give_trainings_answers(
    model: str, runtime: str, trigger: str, binary_output: bool, functions: Functions
) -> None:
    lengths: set[int] = set()
    for case in zoo.cases(model):
        body = zoo.v2_body(model, _raw_bytes(rows_of(model, case)))
        assert body is not None, f"{model}/{case['name']} has no v2 form"
        body["id"] = f"binary-{case['name']}"
        lengths |= _byte_lengths(body)
        raw, n = binary_body(body, binary_output)
        how = f"{trigger} v2 infer, binary inputs, {'binary' if binary_output else 'JSON'} outputs ({runtime})"
        answer = _answer(_send(functions, model, runtime, trigger, raw, n), f"{case['name']} via {how}")
        assert (answer["model_name"], answer["id"]) == (model, body["id"]), answer
        zoo.check_v2(model, case, answer, how)
    # Strings of many lengths (reviews pads with empty ones): a byte-order slip in a length cannot go unseen.
    assert len(lengths - {0}) >= 3, f"the {model} cases sent strings of lengths {sorted(lengths)}"
