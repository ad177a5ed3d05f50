"""One value, one answer: every wire form of the same values gives the same bits, on every model and both runtimes.

Hypothesis draws a golden case of a reference model, then re-encodes each feature's values in a form its dtype
allows, as some client would send them:
- TF Serving v1 JSON: a string as text or `{"b64": ...}`; a number as a JSON number, an int or float of the same
  value, a numeric string, or true/false where it is 0 or 1;
- OIP v2: one tensor per feature in any datatype that holds every value exactly (FP64, FP32, FP16, INT8..64,
  UINT8..64, BOOL; BYTES for strings), each as JSON data or binary data; for churn also the one `features`
  tensor of ordered rows, every value as text (JSON or binary);
- files (the S3 path's readers): JSON Lines of v1 rows; for churn a CSV (any column order, numbers as text, 0/1 as
  True/False/TRUE/true/1/0 as pyarrow's reader takes them) and a Parquet file (numbers as float64, float32 or
  int64 where exact, 0/1 as bool; text as a string or a dictionary column).
The reference is the golden request's own answer, itself checked against what training computed (golden.json):
every other form must equal it bit for bit. A `{"b64"}` category taken as unseen fails here.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.core.service import Service
from handler.formats.base import text_coercer
from handler.formats.csv import csv_chunks
from handler.formats.jsonl import jsonl_chunks
from handler.formats.parquet import open_parquet, parquet_chunks
from tests.conftest import LambdaContext
from tests.support import wire, zoo
from tests.support.functions import RUNTIMES, Functions, infer_path, predict_path
from tests.support.golden_requests import rows_of
from tests.support.http_events import body_of, header, http_event

EXAMPLES = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
_INTS = {
    "INT8": (-(2**7), 2**7 - 1),
    "INT16": (-(2**15), 2**15 - 1),
    "INT32": (-(2**31), 2**31 - 1),
    "INT64": (-(2**63), 2**63 - 1),
    "UINT8": (0, 2**8 - 1),
    "UINT16": (0, 2**16 - 1),
    "UINT32": (0, 2**32 - 1),
    "UINT64": (0, 2**64 - 1),
}
_BOOL_WORDS = {1: ("True", "TRUE", "true", "1"), 0: ("False", "FALSE", "false", "0")}


# --- the values a golden case holds, read once ---------------------------------------------------


def _plain(value: Any, kind: str) -> Any:
    """A golden leaf as the value it means: text for a string (a b64 leaf decoded), a number otherwise."""
    if kind == "string":
        if isinstance(value, dict):
            return base64.b64decode(value["b64"]).decode("utf-8")
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    return value


def _leaves(value: Any, kind: str) -> Any:
    return [_leaves(v, kind) for v in value] if isinstance(value, list) else _plain(value, kind)


def _kinds(model: str) -> dict[str, str]:
    return {
        f["name"]: ("string" if f["dtype"] == "string" else "number")
        for f in zoo.manifest(model)["signature"]["features"]
    }


def _rows(model: str, case: dict[str, Any]) -> list[dict[str, Any]]:
    kinds = _kinds(model)
    return [{name: _leaves(row[name], kinds[name]) for name in kinds} for row in rows_of(model, case)]


def _flat(value: Any) -> list[Any]:
    return [x for v in value for x in _flat(v)] if isinstance(value, list) else [value]


# --- v1 JSON ---------------------------------------------------------------------------------------


def _number_forms(values: list[Any]) -> list[str]:
    forms = ["number", "float", "string"]
    if all(float(v).is_integer() for v in values):
        forms.append("int")
    if all(v in (0, 1) for v in values):
        forms.append("bool")
    return forms


def _v1_leaf(value: Any, form: str) -> Any:
    if form == "b64":
        return wire.b64(value)
    if form == "float":
        return float(value)
    if form == "int":
        return int(value)
    if form == "string":
        return repr(float(value)) if isinstance(value, float) else str(value)
    if form == "bool":
        return bool(value)
    return value  # "number", "text"


def _v1_value(value: Any, form: str) -> Any:
    return [_v1_value(v, form) for v in value] if isinstance(value, list) else _v1_leaf(value, form)


def _draw_v1_rows(draw: Any, model: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kinds = _kinds(model)
    forms = {}
    for name, kind in kinds.items():
        values = [x for r in rows for x in _flat(r[name])]
        forms[name] = draw(st.sampled_from(["text", "b64"] if kind == "string" else _number_forms(values)))
    return [{name: _v1_value(r[name], forms[name]) for name in draw(st.permutations(list(kinds)))} for r in rows]


# --- OIP v2 ----------------------------------------------------------------------------------------


def _datatypes(values: list[Any]) -> list[str]:
    """Every OIP datatype that holds each of these numbers exactly."""
    arr = np.asarray(values, dtype=np.float64)
    out = ["FP64"]
    for name, dtype in (("FP32", np.float32), ("FP16", np.float16)):
        with np.errstate(over="ignore"):
            if (arr.astype(dtype).astype(np.float64) == arr).all():
                out.append(name)
    if (arr == np.floor(arr)).all() and np.abs(arr).max(initial=0) < 2**53:
        out.extend(t for t, (lo, hi) in _INTS.items() if arr.min(initial=0) >= lo and arr.max(initial=0) <= hi)
    if np.isin(arr, (0, 1)).all():
        out.append("BOOL")
    return out


def _json_data(datatype: str, values: list[Any]) -> list[Any]:
    if datatype == "BOOL":
        return [bool(v) for v in values]
    if datatype.startswith(("INT", "UINT")):
        return [int(v) for v in values]
    if datatype.startswith("FP"):
        return [float(v) for v in values]
    return values


def _draw_v2(draw: Any, model: str, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], set[str]]:
    """An infer body, and the tensors to send as binary data."""
    kinds, tensors, binary = _kinds(model), [], set()
    if model == "churn" and draw(st.booleans()):  # the one tensor of ordered rows, every value as text
        names = list(kinds)
        data = [repr(float(r[n])) if kinds[n] == "number" else r[n] for r in rows for n in names]
        tensors.append({"name": "features", "shape": [len(rows), len(names)], "datatype": "BYTES", "data": data})
    else:
        for name, kind in kinds.items():
            batch = np.asarray([r[name] for r in rows], dtype=object)
            values = batch.reshape(-1).tolist()
            datatype = "BYTES" if kind == "string" else draw(st.sampled_from(_datatypes(values)))
            data = _json_data(datatype, values)
            tensors.append({"name": name, "shape": list(batch.shape), "datatype": datatype, "data": data})
    for t in tensors:
        if draw(st.booleans()):
            binary.add(t["name"])
    return {"id": "one-value", "inputs": tensors}, binary


# --- answers as arrays -----------------------------------------------------------------------------


def _v1_outputs(model: str, answer: dict[str, Any]) -> dict[str, np.ndarray]:
    names = zoo.output_names(model)
    predictions = answer["predictions"]
    if len(names) == 1:
        return {names[0]: np.asarray(predictions, dtype=np.float64)}
    return {n: np.asarray([p[n] for p in predictions], dtype=np.float64) for n in names}


def _post(functions: Functions, model: str, runtime: str, path: str, body: Any, headers: Any = None) -> Any:
    response = functions.http(model, "POST", path, body, runtime=runtime, headers=headers)
    assert response["statusCode"] == 200, f"{path}: {response['statusCode']} {str(response.get('body'))[:400]}"
    return response


def _v2_outputs(functions: Functions, model: str, runtime: str, body: dict[str, Any], binary: set[str]) -> Any:
    if not binary:
        answer = body_of(_post(functions, model, runtime, infer_path(model), body))
        return {t["name"]: np.asarray(t["data"], dtype=np.float64).reshape(t["shape"]) for t in answer["outputs"]}
    raw, length = wire.binary_body(body, binary, binary_output=True)
    headers = {"Content-Type": "application/octet-stream", wire.HEADER_LENGTH: str(length)}
    event = http_event("http", "POST", infer_path(model), "", headers=headers)
    event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    response = functions.handler(model, runtime)(event, LambdaContext())
    assert response["statusCode"] == 200, f"binary infer: {response['statusCode']} {str(response.get('body'))[:400]}"
    answer = base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"].encode()
    arrays = wire.binary_outputs(answer, int(header(response, wire.HEADER_LENGTH) or 0))
    return {name: arr.astype(np.float64) for name, arr in arrays.items()}


def _served(service: Service, chunks: Any, n: int) -> dict[str, np.ndarray]:
    (chunk,) = [c for c in chunks if len(c.rows)]
    assert not chunk.errors and len(chunk.rows) == n, chunk.errors
    prediction = service.run(chunk.columns, coded=chunk.coded)
    return {name: arr.astype(np.float64) for name, arr in prediction.outputs.items()}


# --- files -----------------------------------------------------------------------------------------


def _draw_csv(draw: Any, rows: list[dict[str, Any]]) -> bytes:
    kinds = _kinds("churn")
    names = draw(st.permutations(list(kinds)))
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    cells: dict[str, Any] = {}
    for name in names:
        values = [r[name] for r in rows]
        if kinds[name] == "string":
            cells[name] = values
            continue
        form = draw(st.sampled_from([f for f in _number_forms(values) if f not in ("number", "float")] + ["repr"]))
        if form == "bool":
            cells[name] = [draw(st.sampled_from(_BOOL_WORDS[int(v)])) for v in values]
        elif form == "int":
            cells[name] = [str(int(v)) for v in values]
        else:
            cells[name] = [repr(float(v)) for v in values]
    for i in range(len(rows)):
        writer.writerow([cells[name][i] for name in names])
    return out.getvalue().encode()


def _draw_parquet(draw: Any, rows: list[dict[str, Any]]) -> bytes:
    columns = {}
    for name, kind in _kinds("churn").items():
        values = [r[name] for r in rows]
        if kind == "string":
            column = pa.array(values, pa.string())
            columns[name] = column.dictionary_encode() if draw(st.booleans()) else column
            continue
        arrow = {"FP64": pa.float64(), "FP32": pa.float32(), "INT64": pa.int64(), "BOOL": pa.bool_()}
        datatype = draw(st.sampled_from([d for d in _datatypes(values) if d in arrow]))
        columns[name] = pa.array(_json_data(datatype, values), arrow[datatype])
    sink = io.BytesIO()
    pq.write_table(pa.table(columns), sink)
    return sink.getvalue()


# --- the test --------------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("model", zoo.MODELS)
@EXAMPLES
@given(data=st.data())
def test_every_wire_form_of_the_same_values_gives_the_same_bits(
    model: str, runtime: str, functions: Functions, data: st.DataObject
) -> None:
    case = data.draw(st.sampled_from(zoo.cases(model)), label="case")
    rows = _rows(model, case)
    reference = body_of(_post(functions, model, runtime, predict_path(model), {"instances": rows}))
    as_rows = {"request": {"instances": rows}, "expected": case["expected"], "batched": True, "name": case["name"]}
    zoo.check_v1(model, as_rows, reference, "named rows")  # the reference is training's answer
    want = _v1_outputs(model, reference)

    def same(got: dict[str, np.ndarray], how: str) -> None:
        for name, arr in want.items():
            assert np.array_equal(got[name].reshape(arr.shape), arr), (
                f"{model}/{case['name']} via {how}: {name} differs"
            )

    v1_rows = _draw_v1_rows(data.draw, model, rows)
    v1 = body_of(_post(functions, model, runtime, predict_path(model), {"instances": v1_rows}))
    same(_v1_outputs(model, v1), f"v1 {json.dumps(v1_rows)[:300]}")

    body, binary = _draw_v2(data.draw, model, rows)
    same(_v2_outputs(functions, model, runtime, body, binary), f"OIP v2 (binary: {sorted(binary)}) {body}"[:400])

    service = functions.get(model, runtime).service
    assert service is not None
    coercer = service.coercer
    lines = "\n".join(json.dumps(r) for r in v1_rows).encode()
    same(_served(service, jsonl_chunks(io.BytesIO(lines), coercer, 10_000), len(rows)), "JSON Lines")
    if model == "churn":
        text = _draw_csv(data.draw, rows)
        same(_served(service, csv_chunks(io.BytesIO(text), text_coercer(coercer), 10_000), len(rows)), f"CSV {text!r}")
        parquet = open_parquet(io.BytesIO(_draw_parquet(data.draw, rows)), coercer)
        same(_served(service, parquet_chunks(parquet, coercer, 10_000), len(rows)), "Parquet")
