"""Wire forms a client may give the same values, written from the protocols' documents (never the server's code).

- OIP v2's binary tensor data extension: a JSON header, then each tensor's raw little-endian bytes in the
  order of the tensors; a BYTES element is a 4-byte little-endian length, then its bytes.
- TF Serving's `{"b64": ...}` for the bytes of a DT_STRING value.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np

HEADER_LENGTH = "Inference-Header-Content-Length"
# OIP datatype -> the numpy dtype of its raw little-endian bytes.
RAW: dict[str, np.dtype[Any]] = {
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


def b64(text: str | bytes) -> dict[str, str]:
    """TF Serving's JSON form of a string's bytes."""
    raw = text.encode() if isinstance(text, str) else text
    return {"b64": base64.b64encode(raw).decode()}


def tensor_bytes(datatype: str, data: list[Any]) -> bytes:
    """One tensor's flat data in the extension's raw layout."""
    if datatype == "BYTES":
        elements = [v if isinstance(v, bytes) else str(v).encode() for v in data]
        return b"".join(struct.pack("<I", len(e)) + e for e in elements)
    return np.asarray(data, dtype=RAW[datatype]).tobytes()


def binary_body(body: dict[str, Any], binary: set[str], binary_output: bool = False) -> tuple[bytes, int]:
    """(body, JSON header length): the data of the tensors named in `binary` moved out of the JSON into raw bytes."""
    inputs, chunks = [], []
    for t in body["inputs"]:
        if t["name"] not in binary:
            inputs.append(t)
            continue
        raw = tensor_bytes(t["datatype"], t["data"])
        chunks.append(raw)
        inputs.append({k: v for k, v in t.items() if k != "data"} | {"parameters": {"binary_data_size": len(raw)}})
    header = {k: v for k, v in body.items() if k != "inputs"} | {"inputs": inputs}
    header["parameters"] = {**header.get("parameters", {}), "binary_data_output": binary_output}
    head = json.dumps(header).encode()
    return head + b"".join(chunks), len(head)


def binary_outputs(raw: bytes, header_length: int) -> dict[str, np.ndarray]:
    """An infer answer with the extension: each output tensor as an array, decoded from its documented layout."""
    header = json.loads(raw[:header_length])
    pos = header_length
    out: dict[str, np.ndarray] = {}
    for t in header["outputs"]:
        size = (t.get("parameters") or {}).get("binary_data_size")
        if size is None:
            out[t["name"]] = np.asarray(t["data"]).reshape(t["shape"])
            continue
        chunk, pos = raw[pos : pos + size], pos + size
        out[t["name"]] = np.frombuffer(chunk, dtype=RAW[t["datatype"]]).reshape(t["shape"])
    return out
