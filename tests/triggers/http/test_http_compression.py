"""Compressed requests and answers through the real `lambda_handler`: `Content-Encoding: gzip` and `deflate`
(zlib-wrapped and raw) bodies, JSON and the OIP binary extension, give training's answers; a zip bomb is a
413 without taking memory; bodies that are not what their Content-Encoding says are 400s; an unknown coding
is a 415; `Accept-Encoding: gzip` gets a gzip'd answer when it is 1 KiB or more.

Bodies are compressed here with the standard library and the binary framing is written from the extension's
documentation; the expected values are the committed golden outputs.
"""

from __future__ import annotations

import base64
import gzip
import json
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from handler.bootstrap import Started, open_service
from handler.settings import Settings
from handler.triggers.http import body as http_body
from handler.triggers.http.resolvers import HttpApi
from tests.conftest import LambdaContext
from tests.support import zoo
from tests.support.functions import Functions, infer_path, predict_path
from tests.support.golden_requests import rows_of, v2_infer_body
from tests.support.http_events import HTTP_TRIGGERS, body_of, header, http_event

HEADER_LENGTH = "Inference-Header-Content-Length"
DEFAULT_LIMIT = Settings.max_body_bytes
# The extension's raw little-endian layouts of the datatypes these models take and answer.
RAW = {"FP32": "<f4", "FP64": "<f8", "INT32": "<i4", "INT64": "<i8", "UINT8": "<u1", "BOOL": "?"}


def _zlib(data: bytes) -> bytes:
    return zlib.compress(data)


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


# (Content-Encoding, how the body is compressed): deflate both as RFC 9110 says (zlib) and as some clients send it.
CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate_zlib": ("deflate", _zlib),
    "deflate_raw": ("deflate", _raw_deflate),
}


def _event(trigger: str, path: str, raw: bytes, headers: dict[str, str]) -> dict[str, Any]:
    event = http_event(trigger, "POST", path, "", headers=headers)
    event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    return event


def _post(
    functions: Functions, model: str, path: str, raw: bytes, headers: dict[str, str], trigger: str = "http"
) -> dict[str, Any]:
    response: dict[str, Any] = functions.handler(model)(_event(trigger, path, raw, headers), LambdaContext())
    return response


def _ok(response: dict[str, Any], what: str) -> dict[str, Any]:
    assert response["statusCode"] == 200, f"{what}: {response['statusCode']} {str(response.get('body'))[:500]}"
    assert header(response, "Content-Encoding") is None, f"{what}: a compressed answer nobody asked for"
    answer: dict[str, Any] = body_of(response)
    return answer


def _error(response: dict[str, Any], status: int, code: str) -> str:
    assert response["statusCode"] == status, f"expected {status}, got {response['statusCode']}: {response['body']}"
    body = body_of(response)
    assert body["code"] == code, body
    message: str = body["error"]
    return message


def _framed(body: dict[str, Any], binary_output: bool) -> tuple[bytes, int]:
    """(body, JSON header length) in the binary extension: each tensor's data as raw bytes after the JSON."""
    inputs, chunks = [], []
    for t in body["inputs"]:
        if t["datatype"] == "BYTES":
            elements = [str(v).encode() for v in t["data"]]
            raw = b"".join(struct.pack("<I", len(e)) + e for e in elements)
        else:
            raw = np.asarray(t["data"], dtype=RAW[t["datatype"]]).tobytes()
        chunks.append(raw)
        inputs.append({k: v for k, v in t.items() if k != "data"} | {"parameters": {"binary_data_size": len(raw)}})
    head = json.dumps({"inputs": inputs, "parameters": {"binary_data_output": binary_output}}).encode()
    return head + b"".join(chunks), len(head)


def _binary_answer(raw: bytes, length: int) -> dict[str, Any]:
    """An infer answer in the binary extension, read from its documented layout."""
    answer: dict[str, Any] = json.loads(raw[:length])
    pos = length
    for t in answer["outputs"]:
        size = t["parameters"]["binary_data_size"]
        t["data"] = np.frombuffer(raw[pos : pos + size], dtype=RAW[t["datatype"]]).tolist()
        pos += size
    assert pos == len(raw), f"{len(raw) - pos} bytes after the outputs' binary data"
    return answer


# --- compressed requests give training's answers ------------------------------------------------------------


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("model", zoo.MODELS)
def test_compressed_json_bodies_give_every_golden_answer_v1_and_v2(
    model: str, coding: str, functions: Functions
) -> None:
    name, pack = CODINGS[coding]
    headers = {"Content-Encoding": name, "Content-Type": "application/json"}
    for case in zoo.cases(model):
        how = f"v1 predict, Content-Encoding {name} ({coding})"
        response = _post(functions, model, predict_path(model), pack(json.dumps(case["request"]).encode()), headers)
        zoo.check_v1(model, case, _ok(response, f"{case['name']} {how}"), how)
        v2 = v2_infer_body(model, case)
        if v2 is not None:
            how = f"v2 infer JSON, Content-Encoding {name} ({coding})"
            response = _post(functions, model, infer_path(model), pack(json.dumps(v2).encode()), headers)
            zoo.check_v2(model, case, _ok(response, f"{case['name']} {how}"), how)


@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize("model", ["churn", "digits", "reviews"])
def test_compressed_binary_bodies_give_every_golden_answer(model: str, coding: str, functions: Functions) -> None:
    """The header length counts the decompressed body, as Triton's client sends it."""
    name, pack = CODINGS[coding]
    sent = 0
    for case in zoo.cases(model):
        v2 = v2_infer_body(model, case)
        if v2 is None:
            continue
        raw, length = _framed(v2, binary_output=False)
        headers = {"Content-Encoding": name, "Content-Type": "application/octet-stream", HEADER_LENGTH: str(length)}
        how = f"v2 infer binary, Content-Encoding {name} ({coding})"
        response = _post(functions, model, infer_path(model), pack(raw), headers)
        zoo.check_v2(model, case, _ok(response, f"{case['name']} {how}"), how)
        sent += 1
    assert sent >= 5, f"only {sent} {model} cases have a v2 form"


@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_every_trigger_decodes_before_any_route(trigger: str, functions: Functions) -> None:
    case = zoo.cases("churn")[2]
    text = json.dumps(case["request"]).encode()
    for coding, (name, pack) in CODINGS.items():
        headers = {"Content-Encoding": name.upper(), "Content-Type": "application/json"}  # codings are case-blind
        for path in (predict_path("churn"), "/predict"):
            response = _post(functions, "churn", path, pack(text), headers, trigger)
            zoo.check_v1("churn", case, _ok(response, f"{trigger} {path} {coding}"), f"{trigger} {path} {coding}")


@pytest.mark.parametrize(
    "content_encoding, pack",
    [
        ("identity", lambda b: b),
        ("gzip, identity", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate, gzip", lambda b: gzip.compress(_zlib(b))),  # applied in the order listed
        ("gzip", lambda b: gzip.compress(b[:40]) + gzip.compress(b[40:])),  # two gzip members, one body
    ],
)
def test_identity_stacked_codings_and_gzip_members_are_decoded(
    content_encoding: str, pack: Callable[[bytes], bytes], functions: Functions
) -> None:
    case = zoo.cases("churn")[3]
    headers = {"Content-Encoding": content_encoding, "Content-Type": "application/json"}
    response = _post(functions, "churn", "/predict", pack(json.dumps(case["request"]).encode()), headers)
    zoo.check_v1("churn", case, _ok(response, content_encoding), f"Content-Encoding {content_encoding}")


# --- bodies that are not what they say ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_encoding, raw, reason",
    [
        ("gzip", b"this is not gzip at all, just text", "not valid gzip data"),
        ("gzip", gzip.compress(b'{"instances": [[1.0]]}')[:-12], "it is cut short"),  # cut short
        ("gzip", gzip.compress(b'{"instances": []}') + b"garbage", "not valid gzip data"),
        ("deflate", b"\xff\xfe not deflate \x00\x01", "not valid deflate data"),
        ("deflate", _zlib(b'{"instances": []}') + b"tail", "after the end of its deflate data"),
        ("deflate", _zlib(b'{"instances": []}')[:-6], "it is cut short"),
        ("gzip", gzip.compress(b"\xff\xfe{}"), "not UTF-8 text"),
        ("gzip", gzip.compress(b'{"instances": ['), "not valid JSON"),
    ],
    ids=["gzip_garbage", "gzip_truncated", "gzip_trailing", "deflate_garbage", "deflate_trailing",
         "deflate_truncated", "gzip_not_utf8", "gzip_not_json"],
)  # fmt: skip
@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_a_body_that_is_not_its_content_encoding_is_400_saying_so(
    trigger: str, content_encoding: str, raw: bytes, reason: str, functions: Functions
) -> None:
    headers = {"Content-Encoding": content_encoding, "Content-Type": "application/json"}
    message = _error(_post(functions, "churn", "/predict", raw, headers, trigger), 400, "bad_request")
    assert reason in message, message


def test_a_binary_body_whose_decompressed_size_the_header_length_passes_is_400() -> None:
    raw, length = _framed(v2_infer_body("churn", zoo.cases("churn")[0]) or {}, binary_output=False)
    headers = {"Content-Encoding": "gzip", HEADER_LENGTH: str(len(raw) + 1)}
    with pytest.raises(Exception) as caught:
        http_body.prepare(_event("http", infer_path("churn"), gzip.compress(raw), headers), DEFAULT_LIMIT)
    assert f"{HEADER_LENGTH.lower()} is {len(raw) + 1}, but the body has {len(raw)} bytes" in str(caught.value)


def test_a_compressed_body_passed_as_text_is_400_saying_it_must_be_base64(functions: Functions) -> None:
    event = http_event("http", "POST", "/predict", "", headers={"Content-Encoding": "gzip"})
    event["body"] = gzip.compress(b'{"instances": []}').decode("latin-1")  # what a trigger that took it as text has
    response = functions.handler("churn")(event, LambdaContext())
    assert "must reach the function base64-encoded" in _error(response, 400, "bad_request")


@pytest.mark.parametrize("content_encoding", ["br", "zstd", "compress", "gzip, br", "snappy"])
@pytest.mark.parametrize("trigger", HTTP_TRIGGERS)
def test_an_unknown_content_encoding_is_415_naming_the_ones_we_take(
    trigger: str, content_encoding: str, functions: Functions
) -> None:
    headers = {"Content-Encoding": content_encoding, "Content-Type": "application/json"}
    response = _post(functions, "churn", "/predict", b"\x00\x01\x02", headers, trigger)
    message = _error(response, 415, "unsupported_media_type")
    assert "gzip, deflate" in message and repr(content_encoding.split(", ")[-1]) in message, message
    assert header(response, "Accept-Encoding") == "gzip, deflate"  # RFC 9110 §12.5.3


# --- zip bombs ----------------------------------------------------------------------------------------------


def _gzip_member_bomb() -> bytes:
    """1 GiB of zeros as 1,024 gzip members of 1 MiB each (about 1 MB sent): `cat a.gz a.gz ...`."""
    return gzip.compress(bytes(1 << 20), compresslevel=9) * 1024


def _stream_bomb(coding: str) -> bytes:
    """64 MiB of zeros as one gzip, zlib or raw deflate stream (about 64 KB sent)."""
    data = bytes(64 << 20)
    return {"gzip": gzip.compress, "zlib": _zlib, "raw": _raw_deflate}[coding](data)


@pytest.mark.parametrize(
    "content_encoding, bomb",
    [
        ("gzip", _gzip_member_bomb),
        ("gzip", lambda: _stream_bomb("gzip")),
        ("deflate", lambda: _stream_bomb("zlib")),
        ("deflate", lambda: _stream_bomb("raw")),
    ],
    ids=["gzip_1GiB_in_members", "gzip_64MiB_stream", "zlib_64MiB_stream", "raw_deflate_64MiB_stream"],
)
def test_a_zip_bomb_is_413_naming_the_limit_and_never_held_in_memory(
    content_encoding: str, bomb: Callable[[], bytes], functions: Functions
) -> None:
    raw = bomb()
    assert len(raw) < DEFAULT_LIMIT // 4, len(raw)  # small on the wire: only the decompressed size is over
    for path, extra in ((predict_path("churn"), {}), (infer_path("churn"), {HEADER_LENGTH: "20"})):
        headers = {"Content-Encoding": content_encoding, **extra}
        message = _error(_post(functions, "churn", path, raw, headers), 413, "payload_too_large")
        assert f"decompresses to more than MAX_BODY_BYTES={DEFAULT_LIMIT}" in message, message
    event = _event("http", "/predict", raw, {"Content-Encoding": content_encoding})
    tracemalloc.start()
    try:
        with pytest.raises(Exception, match="MAX_BODY_BYTES"):
            http_body.prepare(event, DEFAULT_LIMIT)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # What was sent, and at most the limit (and one byte) inflated, which zlib's output buffer copies once as it
    # ends (so twice): 12 MiB for a bomb of 64 MiB or 1 GiB.
    bound = len(raw) + 2 * DEFAULT_LIMIT + (1 << 20)
    assert peak < bound, f"decoding the bomb took {peak / 2**20:.1f} MiB at its peak, over {bound / 2**20:.1f}"


def _small_limit_api(limit: int) -> HttpApi:
    settings = Settings(model_dir=zoo.model_dir("churn"), max_body_bytes=limit)
    return HttpApi(Started(open_service(settings)), settings)


@pytest.mark.parametrize("coding", CODINGS)
def test_the_decompressed_size_is_what_max_body_bytes_limits(coding: str) -> None:
    name, pack = CODINGS[coding]
    case = zoo.cases("churn")[0]
    text = json.dumps(case["request"]).encode()
    at_limit = _small_limit_api(len(text))
    response = at_limit.handle(
        "http", _event("http", "/predict", pack(text), {"Content-Encoding": name}), LambdaContext()
    )
    zoo.check_v1("churn", case, _ok(response, f"{coding} at the limit"), f"{coding} at MAX_BODY_BYTES")
    one_under = _small_limit_api(len(text) - 1)
    response = one_under.handle(
        "http", _event("http", "/predict", pack(text), {"Content-Encoding": name}), LambdaContext()
    )
    message = _error(response, 413, "payload_too_large")
    assert f"MAX_BODY_BYTES={len(text) - 1}" in message, message


# --- compressed answers -------------------------------------------------------------------------------------


def _digits(name: str) -> dict[str, Any]:
    return next(c for c in zoo.cases("digits") if c["name"] == name)


def _gunzipped(response: dict[str, Any], what: str) -> bytes:
    assert response["statusCode"] == 200, f"{what}: {response['statusCode']} {str(response.get('body'))[:300]}"
    assert header(response, "Content-Encoding") == "gzip", f"{what}: not gzip'd: {response.get('headers')}"
    assert header(response, "Vary") == "Accept-Encoding", what
    assert response["isBase64Encoded"] is True, what
    return gzip.decompress(base64.b64decode(response["body"]))


@pytest.mark.parametrize("trigger", ["http", "function_url", "alb"])
def test_an_answer_of_1_kib_or_more_is_gzipd_for_a_client_that_asks(trigger: str, functions: Functions) -> None:
    case = _digits("batch_of_8")  # an answer of about 1.9 KB
    text = json.dumps(case["request"]).encode()
    for accept in ("gzip", "gzip, deflate, br", "deflate;q=1, GZIP;q=0.5", "x-gzip"):
        response = _post(functions, "digits", "/predict", text, {"Accept-Encoding": accept}, trigger)
        answer = json.loads(_gunzipped(response, f"Accept-Encoding {accept}"))
        zoo.check_v1("digits", case, answer, f"{trigger} gzip'd answer (Accept-Encoding: {accept})")


@pytest.mark.parametrize("accept", [None, "deflate", "br", "gzip;q=0", "identity"])
def test_an_answer_is_not_compressed_for_a_client_that_does_not_take_gzip(
    accept: str | None, functions: Functions
) -> None:
    case = _digits("batch_of_8")
    headers = {"Accept-Encoding": accept} if accept else {}
    response = _post(functions, "digits", "/predict", json.dumps(case["request"]).encode(), headers)
    zoo.check_v1("digits", case, _ok(response, f"Accept-Encoding {accept}"), f"Accept-Encoding {accept}")
    assert header(response, "Vary") == "Accept-Encoding"  # the same URL may be gzip'd for another client


def test_an_answer_under_1_kib_is_sent_as_it_is(functions: Functions) -> None:
    case = _digits("batch_of_4_rows")  # an answer of about 950 bytes
    response = _post(functions, "digits", "/predict", json.dumps(case["request"]).encode(), {"Accept-Encoding": "gzip"})
    assert len(response["body"]) < 1024, len(response["body"])
    zoo.check_v1("digits", case, _ok(response, "small answer"), "a small answer, gzip accepted")
    assert header(response, "Vary") is None


def test_the_rest_api_leaves_compression_to_api_gateway(functions: Functions) -> None:
    """A REST API sends base64 as binary only for its BinaryMediaTypes: its own MinimumCompressionSize gzips."""
    case = _digits("batch_of_8")
    response = _post(
        functions, "digits", "/predict", json.dumps(case["request"]).encode(), {"Accept-Encoding": "gzip"}, "rest"
    )
    zoo.check_v1("digits", case, _ok(response, "rest"), "REST API, gzip accepted")


def test_a_binary_answer_is_gzipd_and_its_header_length_counts_the_decompressed_body(functions: Functions) -> None:
    base = _digits("batch_of_8")
    rows = rows_of("digits", base)
    # 32 images (the 8 four times): 1,280 bytes of FP32 outputs, over 1 KiB. Training's answers, four times.
    case = {**base, "expected": {k: np.tile(v, (4, 1)).tolist() for k, v in base["expected"].items()}}
    v2 = zoo.v2_body("digits", rows * 4)
    assert v2 is not None
    raw, length = _framed(v2, binary_output=True)
    headers = {"Content-Encoding": "gzip", HEADER_LENGTH: str(length), "Accept-Encoding": "gzip"}
    response = _post(functions, "digits", infer_path("digits"), gzip.compress(raw), headers)
    body = _gunzipped(response, "binary answer")
    answer = _binary_answer(body, int(header(response, HEADER_LENGTH) or 0))
    zoo.check_v2("digits", case, answer, "gzip'd binary answer")
