"""Every answered row has an inference id, `<id>/<row>`: the client's own or the request id, in the answer and in
data capture, whatever the trigger (HTTP v1 and OIP v2, direct invoke, SQS, S3 objects, Map batches)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from handler.app import Function
from handler.core.inference_ids import MAX_LENGTH, RowIds
from tests.conftest import LambdaContext, load_event
from tests.monitoring import data
from tests.monitoring.conftest import http_event, make_function
from tests.monitoring.test_capture import captured
from tests.triggers.test_sqs import sqs_event

ROWS = data.churn_rows(data.churn(3, 931))


def capturing(bucket: str, **settings: Any) -> Function:
    return make_function("churn", capture_s3_uri=f"s3://{bucket}/capture/", **settings)


def records(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return [r for o in captured(s3, bucket) for r in o]


def send(function: Function, event: dict[str, Any], context: LambdaContext | None = None) -> dict[str, Any]:
    answer: dict[str, Any] = function.handler()(event, context or LambdaContext())
    return answer


def with_header(event: dict[str, Any], value: str) -> dict[str, Any]:
    event = copy.deepcopy(event)
    event["headers"]["x-inference-id"] = value
    return event


def oip_body(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    features = data.signature("churn")["features"]
    tensors = [
        {
            "name": f["name"],
            "shape": [len(rows)],
            "datatype": "BYTES" if f["dtype"] == "string" else "FP64",
            "data": [r[f["name"]] for r in rows],
        }
        for f in features
    ]
    return {"inputs": tensors, **extra}


def test_a_v1_request_without_an_id_is_named_after_its_request_id(s3: Any, bucket: str) -> None:
    context = LambdaContext()
    answer = send(capturing(bucket), http_event("/v1/models/churn:predict", {"instances": ROWS}), context)
    assert answer["statusCode"] == 200 and answer["headers"]["X-Inference-Id"] == context.aws_request_id
    got = records(s3, bucket)
    assert [r["inference_id"] for r in got] == [f"{context.aws_request_id}/{i}" for i in range(3)]
    assert [r["instance"] for r in got] == ROWS


def test_a_clients_x_inference_id_names_the_rows_and_comes_back(s3: Any, bucket: str) -> None:
    event = with_header(http_event("/v1/models/churn:predict", {"instances": ROWS}), "order-17:batch A")
    answer = send(capturing(bucket), event)
    assert answer["statusCode"] == 200 and answer["headers"]["X-Inference-Id"] == "order-17:batch A"
    assert [r["inference_id"] for r in records(s3, bucket)] == [f"order-17:batch A/{i}" for i in range(3)]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("a\nb", "control character"),
        ("x" * (MAX_LENGTH + 1), f"at most {MAX_LENGTH}"),
    ],
)
def test_an_unusable_x_inference_id_is_a_400_naming_the_header(value: str, reason: str) -> None:
    function = make_function("churn")
    answer = send(function, with_header(http_event("/v1/models/churn:predict", {"instances": ROWS}), value))
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 400 and "X-Inference-Id" in body["error"] and reason in body["error"], body


def test_oip_v2s_request_id_names_the_rows_and_is_the_answers_id(s3: Any, bucket: str) -> None:
    function = capturing(bucket)
    event = with_header(http_event("/v2/models/churn/infer", oip_body(ROWS, id="oip-7")), "ignored-for-the-body-id")
    answer = send(function, event)
    assert answer["statusCode"] == 200, answer["body"]
    assert json.loads(answer["body"])["id"] == "oip-7" and answer["headers"]["X-Inference-Id"] == "oip-7"
    assert [r["inference_id"] for r in records(s3, bucket)] == ["oip-7/0", "oip-7/1", "oip-7/2"]


def test_oip_v2_without_an_id_takes_the_header_else_the_request_id(s3: Any, bucket: str) -> None:
    function = capturing(bucket)
    answer = send(function, with_header(http_event("/v2/models/churn/infer", oip_body(ROWS[:1])), "from-header"))
    assert json.loads(answer["body"])["id"] == "from-header"
    context = LambdaContext()
    answer = send(function, http_event("/v2/models/churn/infer", oip_body(ROWS[:1])), context)
    assert json.loads(answer["body"])["id"] == context.aws_request_id
    assert [r["inference_id"] for r in records(s3, bucket)] == ["from-header/0", f"{context.aws_request_id}/0"]


@pytest.mark.parametrize("bad", ["", 17, "tab\there"])
def test_an_oip_id_that_cannot_name_rows_is_a_400(bad: Any) -> None:
    answer = send(make_function("churn"), http_event("/v2/models/churn/infer", oip_body(ROWS[:1], id=bad)))
    body = json.loads(answer["body"])
    assert answer["statusCode"] == 400 and "'id'" in body["error"], body


def test_classify_and_regress_answers_carry_the_id_too() -> None:
    function = make_function("churn")
    examples = {"examples": ROWS[:1]}
    answer = send(function, with_header(http_event("/v1/models/churn:regress", examples), "reg-1"))
    assert answer["statusCode"] == 200 and answer["headers"]["X-Inference-Id"] == "reg-1", answer["body"]


def test_a_direct_invoke_names_its_rows_after_the_invocation(s3: Any, bucket: str) -> None:
    context = LambdaContext()
    answer = send(capturing(bucket), {"instances": ROWS[:2]}, context)
    assert len(answer["predictions"]) == 2
    assert [r["inference_id"] for r in records(s3, bucket)] == [f"{context.aws_request_id}/{i}" for i in range(2)]


def test_an_sqs_request_id_names_the_rows_and_the_result_says_so(s3: Any, bucket: str) -> None:
    function = capturing(bucket, output_bucket=bucket)
    bodies = [json.dumps({"request_id": "sqs-1", "instances": ROWS[:2]}), json.dumps({"instances": ROWS[2:]})]
    event = sqs_event(bodies, message_ids=["m-1", "m-2"])
    assert send(function, event) == {"batchItemFailures": []}
    first = json.loads(s3.get_object(Bucket=bucket, Key="sqs-results/sqs-1.json")["Body"].read())
    second = json.loads(s3.get_object(Bucket=bucket, Key="sqs-results/m-2.json")["Body"].read())
    assert (first["inference_id"], second["inference_id"]) == ("sqs-1", "m-2")
    assert [r["inference_id"] for r in records(s3, bucket)] == ["sqs-1/0", "sqs-1/1", "m-2/0"]


def test_an_s3_objects_rows_are_named_by_key_and_row_number_refused_rows_keeping_theirs(s3: Any, bucket: str) -> None:
    function = capturing(bucket, output_bucket=bucket)
    cols = data.churn(4, 932)
    lines = [",".join(cols)] + [",".join(str(cols[h][i]) for h in cols) for i in range(4)]
    lines[2] = lines[2].replace("one_year", "ten_years").replace("month_to_month", "ten_years")  # row 1: refused
    lines[2] = lines[2].replace("two_year", "ten_years")
    key = "incoming/day 1/served.csv"
    s3.put_object(Bucket=bucket, Key=key, Body=("\n".join(lines) + "\n").encode())
    event = copy.deepcopy(load_event("s3_put.json"))
    record = event["Records"][0]["s3"]
    record["bucket"].update(name=bucket, arn=f"arn:aws:s3:::{bucket}")
    record["object"].update(key=key.replace(" ", "+"), eTag="", size=1)
    (marker,) = send(function, event)["objects"]
    assert (marker["status"], marker["errors"], marker["inference_id"]) == ("done", 1, key), marker
    assert [r["inference_id"] for r in records(s3, bucket)] == [f"{key}/0", f"{key}/2", f"{key}/3"]


def test_map_batch_items_are_named_by_the_invocation_and_the_item() -> None:
    from handler.triggers import map_batch

    function = make_function("churn")
    seen: list[RowIds | None] = []
    function.service.observers.append(lambda columns, prediction: seen.append(prediction.ids))  # type: ignore[union-attr]
    context = LambdaContext()
    items = [ROWS[0], {"age": "not a number"}, ROWS[1]]
    answer = map_batch.handle_event({"Items": items}, function.service, context)  # type: ignore[arg-type]
    assert answer["predictions"][1] is None and answer["predictions"][0] is not None
    (ids,) = seen
    assert ids is not None and ids.of([0, 1]) == [f"{context.aws_request_id}/0", f"{context.aws_request_id}/2"]


def test_row_ids_number_rows_from_zero_or_by_the_rows_given() -> None:
    assert RowIds("r").of([0, 2]) == ["r/0", "r/2"]
    assert RowIds("in/a.csv", [5, 9, 11]).of([2, 0]) == ["in/a.csv/11", "in/a.csv/5"]
