"""SQS-triggered inference against a local SQS/S3 server over HTTP: partial failures, nothing lost."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from handler.core.json_depth import MAX_JSON_DEPTH
from handler.core.service import Service
from handler.settings import Settings
from handler.triggers import sqs as sqs_source
from tests.conftest import load_event
from tests.support import zoo
from tests.support.moto_s3 import churn_rows
from tests.support.reference import churn_reference


def sqs_event(bodies: list[str], message_ids: list[str] | None = None) -> dict[str, Any]:
    """An SQS event as Lambda builds it, one record per body (shaped like events/sqs.json)."""
    template = load_event("sqs.json")["Records"][0]
    records = []
    for i, body in enumerate(bodies):
        mid = message_ids[i] if message_ids else str(uuid.uuid4())
        records.append(
            {**template, "messageId": mid, "body": body, "md5OfBody": hashlib.md5(body.encode()).hexdigest()}
        )
    return {"Records": records}


def _s3_result(s3: Any, bucket: str, request_id: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(s3.get_object(Bucket=bucket, Key=f"sqs-results/{request_id}.json")["Body"].read())
    return data


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"]).get("Messages")
        if not got:
            return out
        out.extend(got)
        for m in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


def test_sample_event_gives_the_golden_outputs_under_each_request_id(
    s3: Any, bucket: str, service: Service, settings: Settings, golden: dict[str, Any], lambda_context: Any
) -> None:
    event = load_event("sqs.json")
    result = sqs_source.handle_event(event, lambda_context, service, settings)
    assert result == {"batchItemFailures": []}
    by_request = {json.dumps(c["request"], sort_keys=True): c for c in golden["cases"]}
    for record in event["Records"]:
        body = json.loads(record["body"])
        request_id = body.pop("request_id", record["messageId"])
        got = _s3_result(s3, bucket, request_id)
        case = by_request[json.dumps(body, sort_keys=True)]
        assert got.pop("request_id") == request_id and got.pop("model") == "churn" and got.pop("version")
        assert got.pop("inference_id") == request_id, "the request id names the rows: <request_id>/<row>"
        assert re.fullmatch("[0-9a-f]{32}", got.pop("result_id")), "a result id: what consumers de-duplicate on"
        zoo.check_v1("churn", case, got, f"SQS message {request_id}")


def test_poison_messages_get_error_results_and_are_not_retried(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    row = churn_rows(1)[0]
    bodies = [
        json.dumps({"request_id": "good-1", "instances": [row]}),
        "{this is not json",
        json.dumps({"request_id": "bad-feature", "instances": [{**row, "age": "old"}]}),
        json.dumps({"request_id": "good-2", "inputs": row}),
        json.dumps(["not", "an", "object"]),
        json.dumps({"request_id": "../../etc", "instances": [row]}),
    ]
    ids = [f"m-{i}" for i in range(len(bodies))]
    result = sqs_source.handle_event(sqs_event(bodies, ids), lambda_context, service, settings)

    # Retrying cannot fix a client's mistake: every message is consumed, each has a result.
    assert result == {"batchItemFailures": []}
    assert "predictions" in _s3_result(s3, bucket, "good-1")
    assert "outputs" in _s3_result(s3, bucket, "good-2")
    not_json = _s3_result(s3, bucket, "m-1")
    assert not_json["code"] == "bad_request" and "not valid JSON" in not_json["error"]
    invalid = _s3_result(s3, bucket, "bad-feature")
    assert invalid["code"] == "invalid_input"
    assert invalid["details"] == [
        {"instance": 0, "feature": "age", "reason": "must be a number, got a string that is not one"}
    ]
    assert "JSON object" in _s3_result(s3, bucket, "m-4")["error"]
    assert "request_id must be" in _s3_result(s3, bucket, "m-5")["error"]


def test_a_message_nested_too_deep_gets_an_error_result_like_any_bad_message(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    """Python's parser gives up near 1,000 levels (RecursionError): the message was a batch failure, redelivered and
    dead-lettered without a result. Past MAX_JSON_DEPTH, the HTTP body's rule, it is the client's mistake."""
    row = churn_rows(1)[0]
    bodies = [
        '{"request_id": "deep-1", "instances": ' + "[" * 100_000 + "]" * 100_000 + "}",
        json.dumps({"request_id": "deep-2", "instances": [row], "x": json.loads("[" * 40 + "]" * 40)}),
        "[" * 100_000 + "]" * 100_000,
        json.dumps({"request_id": "good-1", "instances": [row]}),
    ]
    result = sqs_source.handle_event(sqs_event(bodies, ["m-0", "m-1", "m-2", "m-3"]), lambda_context, service, settings)
    assert result == {"batchItemFailures": []}
    for message_id in ("m-0", "m-1", "m-2"):  # too deep to read a request id from: filed under the message id
        refused = _s3_result(s3, bucket, message_id)
        assert (refused["request_id"], refused["code"]) == (message_id, "bad_request"), refused
        why = f"the message body is nested more than {MAX_JSON_DEPTH} levels deep: a request is an object of arrays"
        assert refused["error"] == why + " of rows", refused
    assert "predictions" in _s3_result(s3, bucket, "good-1")


def test_results_queue_gets_each_result_with_its_request_id_and_undeliverable_ones_are_retried(
    sqs: Any, service: Service, settings: Settings, lambda_context: Any
) -> None:
    # A results queue that takes at most 1 KiB: a 50-row result does not fit, the small ones do.
    url = sqs.create_queue(QueueName=f"results-{uuid.uuid4().hex[:8]}", Attributes={"MaximumMessageSize": "1024"})[
        "QueueUrl"
    ]
    rows = churn_rows(50)
    bodies = [
        json.dumps({"request_id": "small-1", "instances": rows[:1]}),
        json.dumps({"request_id": "too-big", "instances": rows}),
        json.dumps({"request_id": "small-2", "instances": rows[1:3]}),
        "not json at all",
    ]
    ids = ["a", "b", "c", "d"]
    result = sqs_source.handle_event(
        sqs_event(bodies, ids), lambda_context, service, replace(settings, results_queue_url=url)
    )

    assert result == {"batchItemFailures": [{"itemIdentifier": "b"}]}
    messages = _drain(sqs, url)
    by_id = {m["MessageAttributes"]["request_id"]["StringValue"]: m for m in messages}
    assert sorted(by_id) == ["d", "small-1", "small-2"]
    assert json.loads(by_id["small-2"]["Body"])["request_id"] == "small-2"
    assert len(json.loads(by_id["small-2"]["Body"])["predictions"]) == 2
    assert by_id["d"]["MessageAttributes"]["status"]["StringValue"] == "error"
    want = churn_reference(rows[:1])  # the training pipeline's answer, not the serving path's
    np.testing.assert_allclose(json.loads(by_id["small-1"]["Body"])["predictions"], want, atol=1e-5)


def test_unreachable_destination_fails_every_message_without_raising(
    service: Service, settings: Settings, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = replace(settings, output_bucket="skewless-does-not-exist")
    row = churn_rows(1)[0]
    event = sqs_event([json.dumps({"instances": [row]}), "bad json"], ["x", "y"])
    result = sqs_source.handle_event(event, lambda_context, service, nowhere)
    assert result == {"batchItemFailures": [{"itemIdentifier": "x"}, {"itemIdentifier": "y"}]}
    # Each failed message is logged once, with its id and the reason, and none of the values sent.
    failures = [r for r in caplog.records if r.getMessage().startswith("SQS message failed")]
    assert sorted(r.message_id for r in failures) == ["x", "y"]  # type: ignore[attr-defined]
    assert all(r.levelname == "WARNING" and "NoSuchBucket" in r.reason for r in failures)  # type: ignore[attr-defined]
    logged = caplog.text + "".join(str(r.__dict__) for r in failures)
    assert str(row["monthly_charges"]) not in logged and row["payment_method"] not in logged


def test_no_results_destination_is_logged_as_the_reason(
    settings: Settings, service: Service, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = replace(settings, output_bucket=None, results_queue_url=None)
    event = sqs_event([json.dumps({"instances": churn_rows(1)})], ["m-1"])
    assert sqs_source.handle_event(event, lambda_context, service, nowhere) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}]
    }
    logged = [r for r in caplog.records if r.getMessage().startswith("SQS message failed")]
    assert len(logged) == 1 and logged[0].message_id == "m-1"  # type: ignore[attr-defined]
    assert "set RESULTS_QUEUE_URL or OUTPUT_BUCKET" in logged[0].reason  # type: ignore[attr-defined]


@pytest.mark.slow
def test_a_poison_message_ends_in_the_dead_letter_queue_and_the_others_are_answered(
    s3: Any, sqs: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    """Run the SQS -> Lambda loop for real: receive, handle, delete the successes, redeliver the failures."""
    suffix = uuid.uuid4().hex[:8]
    dlq = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    requests = sqs.create_queue(
        QueueName=f"requests-{suffix}",
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "2"}),
            "VisibilityTimeout": "30",
        },
    )["QueueUrl"]
    results = sqs.create_queue(QueueName=f"results-{suffix}", Attributes={"MaximumMessageSize": "1024"})["QueueUrl"]
    rows = churn_rows(200)
    for i in range(5):
        sqs.send_message(
            QueueUrl=requests, MessageBody=json.dumps({"request_id": f"r{i}", "instances": rows[i : i + 1]})
        )
    # Its result cannot be delivered (over the results queue's size): our failure, retried then dead-lettered.
    sqs.send_message(QueueUrl=requests, MessageBody=json.dumps({"request_id": "poison", "instances": rows}))
    answered = replace(settings, results_queue_url=results)

    for _ in range(6):
        got = sqs.receive_message(QueueUrl=requests, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        if not got:
            break
        event = {
            "Records": [
                {
                    "messageId": m["MessageId"],
                    "receiptHandle": m["ReceiptHandle"],
                    "body": m["Body"],
                    "attributes": m["Attributes"],
                    "messageAttributes": {},
                    "md5OfBody": m["MD5OfBody"],
                    "eventSource": "aws:sqs",
                    "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:requests",
                    "awsRegion": "us-east-1",
                }
                for m in got
            ]
        }
        failed = {
            f["itemIdentifier"]
            for f in sqs_source.handle_event(event, lambda_context, service, answered)["batchItemFailures"]
        }
        for m in got:  # what the Lambda SQS poller does with a partial batch response
            if m["MessageId"] in failed:
                sqs.change_message_visibility(QueueUrl=requests, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0)
            else:
                sqs.delete_message(QueueUrl=requests, ReceiptHandle=m["ReceiptHandle"])

    dead = _drain(sqs, dlq)
    assert [json.loads(m["Body"])["request_id"] for m in dead] == ["poison"]
    answers = _drain(sqs, results)
    assert sorted(m["MessageAttributes"]["request_id"]["StringValue"] for m in answers) == [f"r{i}" for i in range(5)]


def test_a_model_that_cannot_load_fails_the_messages_for_retry_not_with_error_results(
    s3: Any, bucket: str, settings: Settings, artifacts_copy: Any, lambda_context: Any
) -> None:
    from handler.core.artifacts import Artifacts

    broken = Service.create(Artifacts.open(artifacts_copy), settings.coerce_policy())
    (artifacts_copy / "model.keras").write_bytes(b"not a keras archive")  # damaged after the hash check
    event = sqs_event([json.dumps({"request_id": "later", "instances": churn_rows(1)})], ["m1"])

    result = sqs_source.handle_event(event, lambda_context, broken, settings)

    assert result == {"batchItemFailures": [{"itemIdentifier": "m1"}]}
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="sqs-results/")
