"""The Open Inference Protocol's binary tensor data extension (what Triton's clients send by default).

A request or response body is a JSON header followed by raw tensor bytes; the
`Inference-Header-Content-Length` header gives the JSON's length. A tensor whose
`parameters.binary_data_size` is set has no `data` in the JSON: its bytes follow, in the order of
the tensors, little-endian and row-major; BYTES elements are each a 4-byte little-endian length
and then the bytes.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from handler.errors import BadRequest

HEADER_LENGTH = "inference-header-content-length"
BINARY_CONTENT_TYPE = "application/octet-stream"

# OIP datatype -> numpy dtype of its raw bytes (little-endian).
NUMPY_OF = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


def split(body: bytes, header_length: str) -> tuple[dict[str, Any], bytes]:
    """(the JSON header, the raw bytes after it), or BadRequest saying what is wrong with the framing."""
    try:
        n = int(header_length)
    except ValueError:
        raise BadRequest(
            f"{HEADER_LENGTH} must be a number of bytes, got a {len(header_length)}-character text"
        ) from None
    if not 0 < n <= len(body):
        raise BadRequest(
            f"{HEADER_LENGTH} is {n}, but the body has {len(body)} bytes: it must be the JSON header's length"
        )
    try:
        header = json.loads(body[:n])
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the first {n} bytes (the {HEADER_LENGTH}) are not a JSON header: {exc}") from None
    if not isinstance(header, dict):
        raise BadRequest("the binary request's JSON header must be an object")
    return header, body[n:]


def _bytes_elements(raw: bytes, count: int, name: str) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    for _ in range(count):
        if pos + 4 > len(raw):
            raise BadRequest(f"tensor '{name}': its BYTES data ends before element {len(out)}'s length")
        (size,) = struct.unpack_from("<I", raw, pos)
        pos += 4
        if pos + size > len(raw):
            raise BadRequest(f"tensor '{name}': element {len(out)} claims {size} bytes past the end of its data")
        out.append(raw[pos : pos + size])
        pos += size
    if pos != len(raw):
        raise BadRequest(f"tensor '{name}': {len(raw) - pos} bytes left after its {count} BYTES elements")
    return out


def attach_data(header: dict[str, Any], payload: bytes) -> None:
    """Put each binary tensor's data (an array, or a list of bytes) into its JSON, in place."""
    pos = 0
    for t in header.get("inputs") or []:
        if not isinstance(t, dict):
            continue
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is None:
            continue
        name = str(t.get("name"))
        if type(size) is not int or size < 0 or pos + size > len(payload):
            raise BadRequest(f"tensor '{name}': binary_data_size {size!r} does not fit the {len(payload)} bytes sent")
        raw, pos = payload[pos : pos + size], pos + size
        shape, datatype = t.get("shape"), t.get("datatype")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise BadRequest(f"tensor '{name}': shape must be a list of non-negative integers")
        count = int(np.prod(shape, dtype=np.int64))
        if datatype == "BYTES":
            t["data"] = _bytes_elements(raw, count, name)
        elif datatype in NUMPY_OF:
            dtype = NUMPY_OF[str(datatype)]
            if len(raw) != count * dtype.itemsize:
                raise BadRequest(
                    f"tensor '{name}': {len(raw)} bytes of {datatype} data, "
                    f"but shape {shape} needs {count * dtype.itemsize}"
                )
            t["data"] = np.frombuffer(raw, dtype=dtype)
        else:
            raise BadRequest(f"tensor '{name}': datatype {datatype!r} has no binary form")
    if pos != len(payload):
        raise BadRequest(f"{len(payload) - pos} bytes of binary data follow the header but no tensor claims them")


def encode(header: dict[str, Any], tensors: Sequence[Mapping[str, Any]], binary: set[str]) -> tuple[bytes, int]:
    """A response body with the named outputs' data as raw bytes after the JSON header; (body, header length)."""
    chunks: list[bytes] = []
    outputs = []
    for t in tensors:
        if t["name"] not in binary:
            outputs.append(dict(t))
            continue
        arr = np.asarray(t["array"])
        if t["datatype"] == "BYTES":
            raw = b"".join(struct.pack("<I", len(b)) + b for b in (_as_bytes(v) for v in arr.reshape(-1)))
        else:
            raw = np.ascontiguousarray(arr, dtype=NUMPY_OF[t["datatype"]]).tobytes()
        chunks.append(raw)
        described = {k: v for k, v in t.items() if k not in ("data", "array")}
        described["parameters"] = {**(t.get("parameters") or {}), "binary_data_size": len(raw)}
        outputs.append(described)
    json_header = json.dumps(
        {**header, "outputs": [{k: v for k, v in o.items() if k != "array"} for o in outputs]}
    ).encode()
    return json_header + b"".join(chunks), len(json_header)


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
