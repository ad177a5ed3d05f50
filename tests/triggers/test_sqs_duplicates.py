"""SQS without silent loss or silent duplicates: a request id used twice in a batch, redeliveries, and a
`SendMessage` whose answer is lost (a fault-injecting proxy in front of a local SQS server). Each test counts
messages in, results, error results and copies: every message ends in exactly one result or error result,
and every copy can be told for one by its `result_id`."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from handler import aws
from handler.core.service import Service
from handler.settings import Settings
from handler.triggers import sqs as sqs_source
from tests.support.faults import MotoProcess, ResettingProxy, fast_client
from tests.support.moto_s3 import churn_rows
from tests.support.reference import churn_reference
from tests.triggers.test_sqs import _drain, _s3_result, sqs_event


def test_a_request_id_used_twice_in_one_batch_is_an_error_result_for_the_second(
    s3: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    first, second = churn_rows(3)[:2], churn_rows(3)[2:]
    bodies = [
        json.dumps({"request_id": "dup-1", "instances": first}),
        json.dumps({"request_id": "dup-1", "instances": second}),
        json.dumps({"request_id": "other", "instances": second}),
    ]
    result = sqs_source.handle_event(sqs_event(bodies, ["m-1", "m-2", "m-3"]), lambda_context, service, settings)
    assert result == {"batchItemFailures": []}  # retrying cannot help the second: it is answered with an error

    listed = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="sqs-results/")["Contents"])
    assert listed == ["sqs-results/dup-1.json", "sqs-results/m-2.json", "sqs-results/other.json"]
    kept = _s3_result(s3, bucket, "dup-1")  # the first message's answer, not overwritten by the second
    np.testing.assert_allclose(kept["predictions"], churn_reference(first), atol=1e-5)
    refused = _s3_result(s3, bucket, "m-2")
    assert refused["code"] == "duplicate_request_id" and "predictions" not in refused, refused
    assert refused["error"].startswith("request_id 'dup-1' is already used by message m-1 of this batch"), refused
    np.testing.assert_allclose(_s3_result(s3, bucket, "other")["predictions"], churn_reference(second), atol=1e-5)


def test_a_redelivered_message_gives_one_result_with_the_same_result_id(
    s3: Any, sqs: Any, bucket: str, service: Service, settings: Settings, lambda_context: Any
) -> None:
    body = json.dumps({"request_id": "again-1", "instances": churn_rows(2)})
    ids = []
    for _ in range(2):  # SQS delivers the same message (same message id) twice
        sqs_source.handle_event(sqs_event([body], ["m-1"]), lambda_context, service, settings)
        head = s3.head_object(Bucket=bucket, Key="sqs-results/again-1.json")
        ids.append(head["Metadata"]["result-id"])
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="sqs-results/")["Contents"]
    assert [o["Key"] for o in listed] == ["sqs-results/again-1.json"]
    assert ids[0] == ids[1] == _s3_result(s3, bucket, "again-1")["result_id"]
    other = json.dumps({"request_id": "again-1", "instances": churn_rows(3)})  # another request, same id
    sqs_source.handle_event(sqs_event([other], ["m-2"]), lambda_context, service, settings)
    assert _s3_result(s3, bucket, "again-1")["result_id"] != ids[0]

    # A FIFO results queue drops the copy itself: the result id is its deduplication id.
    fifo = sqs.create_queue(QueueName=f"results-{uuid.uuid4().hex[:8]}.fifo", Attributes={"FifoQueue": "true"})
    fifo_settings = replace(settings, results_queue_url=fifo["QueueUrl"])
    for _ in range(2):
        sqs_source.handle_event(sqs_event([body], ["m-1"]), lambda_context, service, fifo_settings)
    got = _drain(sqs, fifo["QueueUrl"])
    assert len(got) == 1 and got[0]["MessageAttributes"]["result_id"]["StringValue"] == ids[0]


@pytest.mark.parametrize("lost_at", [0, 4, 9])
def test_a_lost_send_answer_makes_a_copy_that_its_result_id_tells_apart(
    moto_proc: MotoProcess,
    resetting_moto: ResettingProxy,
    service: Service,
    settings: Settings,
    lambda_context: Any,
    monkeypatch: pytest.MonkeyPatch,
    lost_at: int,
) -> None:
    """The proxy resets the connection as the answer to one SendMessage starts: the server has queued the
    result, the client never hears so and sends it again. A standard queue cannot refuse the copy."""
    direct = moto_proc.client("sqs")
    url = direct.create_queue(QueueName=f"results-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    through = fast_client(resetting_moto.endpoint, "sqs", timeout=10, attempts=3)

    class LoseOneAnswer:
        """The handler's SQS client: arms the proxy just before the chosen send, so that answer is lost."""

        sends = 0

        def send_message(self, **kwargs: Any) -> Any:
            if self.sends == lost_at:
                resetting_moto.arm(after_bytes=0)
            self.sends += 1
            return through.send_message(**kwargs)

    client = LoseOneAnswer()
    monkeypatch.setattr(aws, "client", lambda name: client)
    rows = churn_rows(10)
    bodies = [json.dumps({"request_id": f"r-{i}", "instances": [row]}) for i, row in enumerate(rows)]
    result = sqs_source.handle_event(
        sqs_event(bodies), lambda_context, service, replace(settings, results_queue_url=url)
    )
    assert result == {"batchItemFailures": []}
    assert resetting_moto.resets == 1, "the fault was not injected"

    got = _drain(direct, url)
    assert len(got) == 11, f"{len(got)} results for 10 messages: the lost answer should have made one copy"
    results = [json.loads(m["Body"]) for m in got]
    copies = Counter(r["result_id"] for r in results)
    assert len(copies) == 10 and sorted(copies.values()) == [1] * 9 + [2], copies
    # Keeping the first of each result_id, as docs/bulk.md tells consumers, leaves one answer per message.
    kept: dict[str, dict[str, Any]] = {}
    for r in results:
        kept.setdefault(r["result_id"], r)
    by_request = {r["request_id"]: r for r in kept.values()}
    assert sorted(by_request) == sorted(f"r-{i}" for i in range(10))
    for i, row in enumerate(rows):
        np.testing.assert_allclose(by_request[f"r-{i}"]["predictions"], churn_reference([row]), atol=1e-5)
