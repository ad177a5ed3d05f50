"""Property-based: any body, any bytes, any text, any direct-invoke event gets exactly the status of its class, for
churn and a zoo model, never a 5xx and never a raise. The class of each generated body is computed here, from the
rules the README states (not from the server's code):
- no body, not JSON (Python's parser), a key twice in one object, or nesting over 32 levels: 400;
- JSON that is not an object: 400 over HTTP; a direct invoke has no JSON text, so there it is a 422;
- an object: 200 or 422; exactly 422 when it cannot be a request at all (v1: not exactly one of `instances`
  and `inputs`, or another top-level key; v2: no non-empty `inputs` array); exactly 400 for a v1 body with
  exactly one of them and a `signature_name` other than "serving_default" (or "", or null): TF Serving's
  400 for a signature the model does not have.
Every error answer is in our shape with the code of its status and quotes none of the request's values."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from handler.core.artifacts import Artifacts
from handler.core.coerce import CoercePolicy, Coercer
from handler.core.signature import numpy_dtype
from handler.errors import BadRequest, InvalidInput
from tests.conftest import LambdaContext
from tests.hostile.bad_input import CODES
from tests.hostile.conftest import check_error
from tests.hostile.status_oracle import MAX_DEPTH, depth, no_twice  # README: nesting over 32 levels is a 400
from tests.support import zoo
from tests.support.functions import FUNCTIONS
from tests.support.http_events import body_of, http_event

MODELS = ("churn", "recommender")
V1_KEYS = {"instances", "inputs", "signature_name"}
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
FEW = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)

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
# Objects shaped like requests, so that the {200, 422} class is drawn often, not only the 400 one.
request_like = st.fixed_dictionaries(
    {},
    optional={
        "instances": json_values,
        "inputs": json_values,
        "signature_name": json_values,
        "extra": json_values,
    },
)


def parsed(text: str) -> tuple[str, Any]:
    """("no body" | "not JSON" | "not an object" | "object", the value)."""
    if text == "":
        return "no body", None
    try:
        value = json.loads(text, object_pairs_hook=no_twice)
    except (ValueError, RecursionError):
        return "not JSON", None
    if depth(value) > MAX_DEPTH:
        return "not JSON", None
    return ("object" if isinstance(value, dict) else "not an object"), value


def object_statuses(route: str, body: dict[str, Any]) -> set[int]:
    if route == "infer":
        inputs = body.get("inputs")
        return {200, 422} if isinstance(inputs, list) and inputs else {422}
    if ("instances" in body) == ("inputs" in body):
        return {422}
    if body.get("signature_name") not in (None, "", "serving_default"):
        return {400}
    if set(body) - V1_KEYS:
        return {422}
    return {200, 422}


def expected(route: str, text: str) -> set[int]:
    kind, value = parsed(text)
    return object_statuses(route, value) if kind == "object" else {400}


def _path(model: str, route: str) -> str:
    return {"predict": f"/v1/models/{model}:predict", "bare": "/predict", "infer": f"/v2/models/{model}/infer"}[route]


def judge(model: str, route: str, text: str, response: dict[str, Any]) -> None:
    """The answer's status is the one of the body's class; a 2xx holds an answer, an error our shape."""
    allowed = expected("infer" if route == "infer" else "predict", text)
    status = response["statusCode"]
    assert status in allowed, (
        f"{route} {text[:200]!r}: expected {sorted(allowed)}, got {status}: {response['body']:.300}"
    )
    if status == 200:
        answer = body_of(response)
        assert set(answer) in ({"predictions"}, {"outputs"}) or "outputs" in answer and "model_name" in answer, answer
    else:
        check_error(response, status, model, text)


ROUTES = st.sampled_from(["predict", "bare", "infer"])


@pytest.mark.parametrize("model", MODELS)
def test_any_json_body_gets_the_status_of_its_class(model: str) -> None:
    @SETTINGS
    @given(body=json_values | request_like, route=ROUTES)
    def prop(body: Any, route: str) -> None:
        text = json.dumps(body)
        judge(model, route, text, FUNCTIONS.http(model, "POST", _path(model, route), text))

    prop()


@pytest.mark.parametrize("model", MODELS)
def test_any_bytes_get_the_status_of_their_class(model: str) -> None:
    @SETTINGS
    @given(raw=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()), route=ROUTES)
    def prop(raw: bytes, route: str) -> None:
        event = http_event("http", "POST", _path(model, route), "{}")
        event["body"], event["isBase64Encoded"] = base64.b64encode(raw).decode(), True
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            response = FUNCTIONS.handler(model)(event, LambdaContext())
            check_error(response, 400, model, None)
            return
        judge(model, route, text, FUNCTIONS.handler(model)(event, LambdaContext()))

    prop()


@pytest.mark.parametrize("model", MODELS)
def test_any_text_gets_the_status_of_its_class(model: str) -> None:
    @SETTINGS
    @given(
        text=st.text(max_size=200) | st.sampled_from(["", " ", "{}", "[]", "null", '{"a": 1, "a": 2}']), route=ROUTES
    )
    def prop(text: str, route: str) -> None:
        judge(model, route, text, FUNCTIONS.http(model, "POST", _path(model, route), text))

    prop()


@FEW
@given(body=json_values | request_like, model=st.sampled_from(MODELS))
def test_any_body_through_rest_v1_gets_the_status_of_its_class(body: Any, model: str) -> None:
    text = json.dumps(body)
    judge(model, "predict", text, FUNCTIONS.http(model, "POST", _path(model, "predict"), text, trigger="rest"))


@FEW
@given(event=json_values | request_like, model=st.sampled_from(MODELS))
def test_any_direct_invoke_event_gets_predictions_or_fails_with_the_error_of_its_class(event: Any, model: str) -> None:
    # No JSON text on this path: an event that is not an object does not fit the signature (422).
    allowed = object_statuses("predict", event) if isinstance(event, dict) else {422}
    try:
        answer = FUNCTIONS.direct(model, event)
    except Exception as exc:  # a failed invocation: its message is the JSON error body with its status
        assert type(exc).__name__ == "InvalidInput", (event, exc)
        body = json.loads(str(exc))
        assert body["status"] in allowed - {200}, (event, body)
        assert set(body) <= {"error", "code", "details", "status", "request_id"}, body
        assert body["code"] == CODES[body["status"]] and body["error"], body
        return
    assert 200 in allowed and set(answer) in ({"predictions"}, {"outputs"}), (event, answer)


# --- the coercer alone: any JSON value is coerced to the signature's dtypes and shapes, or refused with reasons ---


def _coercer(model: str) -> Coercer:
    return Coercer(Artifacts.open(zoo.model_dir(model)).signature, CoercePolicy())


@pytest.mark.parametrize("model", MODELS)
def test_the_coercer_takes_any_json_value_or_says_why(model: str) -> None:
    coercer = _coercer(model)
    features = {f["name"]: f for f in zoo.manifest(model)["signature"]["features"]}

    @SETTINGS
    @given(body=json_values | request_like)
    def prop(body: Any) -> None:
        allowed = object_statuses("predict", body) if isinstance(body, dict) else {422}
        try:
            req = coercer.coerce(body)
        except InvalidInput as exc:
            assert exc.status == 422 in allowed and exc.errors, exc
            for e in exc.errors:
                assert e.reason and (e.instance is None or e.instance >= 0), e
            return
        except BadRequest as exc:
            assert exc.status == 400 and allowed == {400}, (body, exc)
            return
        assert 200 in allowed, body
        assert set(req.columns) == set(features), req.columns.keys()
        for name, column in req.columns.items():
            spec = features[name]
            assert column.shape == (req.n, *spec["shape"]), (name, column.shape)
            assert column.dtype == numpy_dtype(spec["dtype"]), (name, column.dtype)

    prop()
