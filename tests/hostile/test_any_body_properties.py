"""Property-based: for any body, a 2xx with predictions or a 4xx with a clear message; never a 5xx, never a raise.
A valid body with its keys shuffled or its integral numbers written as ints gives the same predictions."""

from __future__ import annotations

import base64
import functools
import json
from types import ModuleType
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.core.coerce import CoercedRequest, CoercePolicy, Coercer
from handler.errors import InvalidInput
from tests.conftest import LambdaContext
from tests.hostile.catalogue import INFER, PREDICT, ROW
from tests.hostile.conftest import assert_answer, call
from tests.http.http_events import body_of, http_event

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
FEW = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
feature_names = st.sampled_from(list(ROW))


@st.composite
def near_valid_bodies(draw: st.DrawFn) -> Any:
    """A golden row, then a few mutations: drop, add or retype a feature; wrap, batch or reshape the body."""
    rows = [dict(ROW) for _ in range(draw(st.integers(1, 3)))]
    for r in rows:
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(["drop", "retype", "add", "stringify", "int"]))
            name = draw(feature_names)
            if kind == "drop":
                r.pop(name, None)
            elif kind == "retype":
                r[name] = draw(json_values)
            elif kind == "add":
                r[draw(st.text(max_size=8))] = draw(json_values)
            elif kind == "stringify" and name in r:
                r[name] = str(r[name])
            elif kind == "int" and isinstance(r.get(name), float):
                r[name] = int(r[name])
    shape = draw(st.sampled_from(["instances", "ordered", "columns", "single", "bare_row", "v2_rows"]))
    if shape == "instances":
        return {"instances": rows}
    if shape == "ordered":
        return {"instances": [list(r.values()) for r in rows]}
    if shape == "columns":
        return {"inputs": {k: [r.get(k) for r in rows] for k in rows[0]}}
    if shape == "single":
        return {"inputs": rows[0]}
    if shape == "bare_row":
        return rows[0]
    values = [list(r.values()) for r in rows]
    width = draw(st.sampled_from([len(ROW), len(values[0])]))
    return {"inputs": [{"name": "features", "shape": [len(values), width], "datatype": "BYTES", "data": values}]}


@functools.cache
def coercer() -> Coercer:
    """The served model's coercer under the default policy."""
    from handler.app import service

    assert service is not None
    return Coercer(service.artifacts.preprocessor, CoercePolicy())


def _coerced_or_invalid(body: Any) -> CoercedRequest | None:
    try:
        req = coercer().coerce(body)
    except InvalidInput as exc:
        assert exc.errors and all(e.reason for e in exc.errors), exc
        assert exc.status == 422
        return None
    for name, column in req.columns.items():
        assert len(column) == req.n, (name, len(column), req.n)
        if column.dtype == np.float64:
            assert np.isfinite(column).all(), (name, column)
    return req


@SETTINGS
@given(body=json_values)
def test_coercer_takes_any_json_value_or_says_why(body: Any) -> None:
    _coerced_or_invalid(body)


@SETTINGS
@given(body=near_valid_bodies())
def test_coercer_takes_any_near_valid_body_or_says_why(body: Any) -> None:
    _coerced_or_invalid(body)


@SETTINGS
@given(body=json_values, path=st.sampled_from([PREDICT, "/predict", INFER]))
def test_any_json_body_is_answered_2xx_or_4xx(app: ModuleType, body: Any, path: str) -> None:
    assert_answer(call(app, "POST", path, json.dumps(body)))


@SETTINGS
@given(raw=st.binary(max_size=200), path=st.sampled_from([PREDICT, INFER]))
def test_any_bytes_are_answered_2xx_or_4xx(app: ModuleType, raw: bytes, path: str) -> None:
    event = http_event("http", "POST", path, "{}")
    event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
    assert_answer(app.lambda_handler(event, LambdaContext()))


@SETTINGS
@given(text=st.text(max_size=200))
def test_any_text_is_answered_2xx_or_4xx(app: ModuleType, text: str) -> None:
    assert_answer(call(app, "POST", PREDICT, text))


@SETTINGS
@given(body=near_valid_bodies())
def test_any_near_valid_body_is_answered_2xx_or_4xx(app: ModuleType, body: Any) -> None:
    path = (
        INFER if isinstance(body.get("inputs"), list) and body["inputs"] and "shape" in body["inputs"][0] else PREDICT
    )
    assert_answer(call(app, "POST", path, json.dumps(body)))


@FEW
@given(body=json_values | near_valid_bodies())
def test_any_body_through_rest_v1_is_answered_2xx_or_4xx(app: ModuleType, body: Any) -> None:
    assert_answer(call(app, "POST", PREDICT, json.dumps(body), trigger="rest"))


@FEW
@given(event=json_values | near_valid_bodies())
def test_any_direct_invoke_event_gets_predictions_or_an_error_object(app: ModuleType, event: Any) -> None:
    answer = app.lambda_handler(event, LambdaContext())
    assert isinstance(answer, dict), answer
    if "error" in answer:
        assert 400 <= answer["status"] < 500, answer
        assert answer["error"] and answer["code"], answer
    else:
        assert "predictions" in answer or "outputs" in answer, answer


def _predict(app: ModuleType, body: Any) -> Any:
    response = call(app, "POST", PREDICT, json.dumps(body))
    assert response["statusCode"] == 200, response["body"]
    return body_of(response)


@SETTINGS
@given(data=st.data())
def test_shuffled_keys_and_integral_numbers_as_ints_give_the_same_predictions(
    app: ModuleType, data: st.DataObject
) -> None:
    rows = [dict(ROW) for _ in range(data.draw(st.integers(1, 4), label="rows"))]
    for r in rows:
        for name in data.draw(st.lists(feature_names, max_size=4), label="changed"):
            # Same value, other type or spelling: a float becomes another valid one, or stays.
            if isinstance(r[name], float):
                r[name] = float(data.draw(st.integers(0, 500), label=name))
    expected = _predict(app, {"instances": rows})
    shuffled = []
    for r in rows:
        keys = data.draw(st.permutations(list(r)), label="order")
        shuffled.append({k: int(r[k]) if isinstance(r[k], float) and r[k].is_integer() else r[k] for k in keys})
    assert _predict(app, {"instances": shuffled}) == expected, (rows, shuffled)
    columns = {k: [r[k] for r in shuffled] for k in data.draw(st.permutations(list(ROW)), label="column order")}
    assert _predict(app, {"inputs": columns})["outputs"] == expected["predictions"]
