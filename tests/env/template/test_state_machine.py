"""The BulkInference state machine of template.yaml, run by moto's Step Functions interpreter over moto's S3.

What is real here, and what is not:
- Real: the definition as template.yaml writes it (the Settings state's numbers, the Choice, the CSV
  ItemReader with its header row, the listing ItemReader and the ItemSelector's EventBridge event,
  MaxConcurrencyPath, both Retry policies, ResultWriter's manifest), over objects in moto's S3; and
  our `lambda_handler`, which answers every invocation and reads and writes moto's S3 itself.
- A stand-in: Lambda. moto's Lambda echoes the payload back without Docker (and cannot run an Image
  function at all), so its `invoke` is patched to call `lambda_handler` in this process, one call at
  a time as one container would, reporting a raised error as Lambda does (`FunctionError` and the
  `errorType`). The runtime and the image are tested elsewhere: test_map_batch_emulator.py, tests/sam.
- Changed for moto, whose parser refuses them (moto 5.2.5): `ItemBatcher` (an ItemSelector wraps each
  item in a batch of one instead, so the function still gets the `{"BatchInput", "Items"}` contract);
  `ExecutionType: EXPRESS` (STANDARD here); the JSONL and PARQUET readers (moto reads CSV and JSON
  only: those two states become Fail states). moto's listing items spell the ETag `ETag`, S3's API
  shape, where Step Functions' listing items spell it `Etag`: the selector is pointed at moto's.
  moto's ResultWriter writes only a manifest, so the rows test drops it to read the Map's answers.
- Not checked here: the tolerance's effect (moto counts a failed child but never fails the run past
  `ToleratedFailurePercentage`), batch sizes, and everything about Express children (limits, pricing).
  MaxConcurrency is: moto runs the children at most that many at a time, read from the Settings state.
"""

from __future__ import annotations

import copy
import io
import json
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cfnlint.decode import decode
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend

from handler import aws
from handler.app import Function
from tests.conftest import ROOT, LambdaContext
from tests.support import zoo
from tests.support.batches import as_csv_items, batch_event
from tests.support.moto_s3 import COLUMNS, churn_rows, csv_bytes, read_predictions
from tests.support.reference import churn_reference

BUCKET = "skewless-data"
MACHINE = "skewless-bulk-inference"


def definition_as_written(**settings: str) -> dict[str, Any]:
    """template.yaml's definition with its DefinitionSubstitutions put in, as text, as Step Functions does."""
    template, problems = decode(str(ROOT / "template.yaml"))
    assert not problems and template is not None, problems
    text = json.dumps(template["Resources"]["BulkInference"]["Properties"]["Definition"])
    values = {
        "FunctionAlias": "arn:aws:lambda:us-east-1:123456789012:function:skewless:live",
        "DataBucket": BUCKET,
        "ResultsPrefix": "bulk-results/",
        "BatchSize": "500",
        "MaxConcurrency": "4",
        "ToleratedFailurePercentage": "0",
        **settings,
    }
    for name, value in values.items():
        text = text.replace("${" + name + "}", value)
    assert "${" not in text, "a substitution template.yaml uses is not given here"
    data: dict[str, Any] = json.loads(text)
    return data


def for_moto(definition: dict[str, Any], keep_results: bool = True) -> dict[str, Any]:
    """The changes moto's parser needs (module docstring), and nothing else."""
    out = copy.deepcopy(definition)
    states = out["States"]
    for name in ("RowsOfJsonLines", "RowsOfAParquet"):
        states[name] = {"Type": "Fail", "Error": "NotInMoto", "Cause": "moto reads CSV and JSON only"}
    for state in states.values():
        if state.get("Type") != "Map":
            continue
        state["ItemProcessor"]["ProcessorConfig"]["ExecutionType"] = "STANDARD"
        batcher = state.pop("ItemBatcher", None)
        if batcher is not None:
            state["ItemSelector"] = {"Items.$": "States.Array($$.Map.Item.Value)", "BatchInput": batcher["BatchInput"]}
        selector = state.get("ItemSelector", {}).get("detail", {}).get("object")
        if selector is not None:
            selector["etag.$"] = "$$.Map.Item.Value.ETag"
        if not keep_results:
            state.pop("ResultWriter", None)
    return out


class World:
    """moto's S3, Lambda and Step Functions in this process, our function behind the Lambda invoke."""

    def __init__(self, function: Function) -> None:
        self.s3 = aws.client("s3")
        self.sfn = aws.client("stepfunctions")
        self.handler = function.handler()
        self.calls: list[Any] = []
        self.faults: list[str | None] = []  # errorTypes the next invocations fail with (None: none), unrun
        self.context: Callable[[], Any] = LambdaContext  # what the function is told of its remaining time
        self.in_flight = 0
        self.most_in_flight = 0
        self._lock = threading.Lock()
        self._one_container = threading.Lock()
        iam = aws.client("iam")
        self.role = iam.create_role(RoleName="bulk", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        lam = aws.client("lambda")
        code = io.BytesIO()
        zipfile.ZipFile(code, "w").writestr("stub.py", "")  # never run: invoke is ours (module docstring)
        lam.create_function(
            FunctionName="skewless",
            Runtime="python3.11",
            Role=self.role,
            Handler="stub.h",
            Code={"ZipFile": code.getvalue()},
        )
        lam.publish_version(FunctionName="skewless")
        lam.create_alias(FunctionName="skewless", Name="live", FunctionVersion="1")
        self.s3.create_bucket(Bucket=BUCKET)

    def invoke(self, body: Any, response_headers: dict[str, str]) -> bytes:
        event = json.loads(body)
        with self._lock:
            self.calls.append(event)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            fault = self.faults.pop(0) if self.faults else None
        try:
            if fault is not None:
                response_headers["x-amz-function-error"] = "Unhandled"
                return json.dumps({"errorType": fault, "errorMessage": json.dumps({"status": 503})}).encode()
            with self._one_container:
                try:
                    result = self.handler(event, self.context())
                except Exception as exc:  # as Lambda reports an error the handler raised
                    response_headers["x-amz-function-error"] = "Unhandled"
                    return json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}).encode()
            return json.dumps(result).encode()
        finally:
            with self._lock:
                self.in_flight -= 1

    def run(self, definition: dict[str, Any], execution_input: Any, timeout: float = 120) -> dict[str, Any]:
        name = f"{MACHINE}-{uuid.uuid4().hex[:8]}"
        machine = self.sfn.create_state_machine(name=name, definition=json.dumps(definition), roleArn=self.role)
        execution = self.sfn.start_execution(
            stateMachineArn=machine["stateMachineArn"], name=uuid.uuid4().hex, input=json.dumps(execution_input)
        )
        deadline = time.monotonic() + timeout
        while True:
            described: dict[str, Any] = self.sfn.describe_execution(executionArn=execution["executionArn"])
            if described["status"] != "RUNNING":
                return described
            assert time.monotonic() < deadline, f"the execution still runs after {timeout} s"
            time.sleep(0.05)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, function_for: Any) -> Iterator[World]:
    # In-process moto: no endpoint of a moto server (tests/integration's) may be left in the environment.
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.client.cache_clear()
    config: Any = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with mock_aws(config=config):
        here = World(function_for("churn", "litert"))
        monkeypatch.setattr(
            LambdaSimpleBackend,
            "invoke",
            lambda _self, _fn, _q, body, _h, response_headers: here.invoke(body, response_headers),
        )
        yield here
    aws.client.cache_clear()


def test_the_rows_of_a_csv_reach_the_function_as_batches_of_strings_and_get_trainings_answers(world: World) -> None:
    case = next(c for c in zoo.cases("churn") if c["name"] == "batch_of_32_shuffled_keys")
    rows = zoo.named_rows(case) or []
    items = as_csv_items(rows)
    assert items is not None
    header = list(reversed(COLUMNS))
    world.s3.put_object(Bucket=BUCKET, Key="incoming/big.csv", Body=csv_bytes(items, header))

    done = world.run(for_moto(definition_as_written(), keep_results=False), {"key": "incoming/big.csv"})

    assert done["status"] == "SUCCEEDED", done
    answers = json.loads(done["output"])
    assert len(answers) == len(rows) == len(world.calls)
    # What the CSV ItemReader gave the function: the header's names, every value a string, the source named.
    # (The children run concurrently: the calls come in any order, the Map's answers in the items' order.)
    assert all(call["BatchInput"] == {"source": f"s3://{BUCKET}/incoming/big.csv"} for call in world.calls)
    received = sorted(json.dumps(call["Items"], sort_keys=True) for call in world.calls)
    assert received == sorted(json.dumps([item], sort_keys=True) for item in items)
    assert all(a["errors"] == [] and a["model_version"] == "1" for a in answers), answers
    zoo.check_v1("churn", case, {"predictions": [a["predictions"][0] for a in answers]}, "BulkInference (moto)")


def test_every_object_under_a_prefix_goes_through_the_s3_path_and_the_results_are_written(world: World) -> None:
    objects = {}
    for i, n in enumerate((40, 7, 300)):
        rows = churn_rows(n, seed=100 + i)
        key = f"incoming/part/{i}.csv"
        world.s3.put_object(Bucket=BUCKET, Key=key, Body=csv_bytes(rows, COLUMNS))
        objects[key] = rows
    lake = churn_rows(50, seed=7)
    buf = io.BytesIO()
    pq.write_table(pa.table({c: [r[c] for r in lake] for c in COLUMNS}), buf)
    world.s3.put_object(Bucket=BUCKET, Key="incoming/part/lake.parquet", Body=buf.getvalue())
    world.s3.put_object(Bucket=BUCKET, Key="incoming/part/", Body=b"")  # a console "folder": ignored
    world.s3.put_object(Bucket=BUCKET, Key="incoming/other/x.csv", Body=b"not, under, the, prefix\n")

    done = world.run(for_moto(definition_as_written()), {"prefix": "incoming/part/"})

    assert done["status"] == "SUCCEEDED", done
    assert len(world.calls) == 5, [c["detail"]["object"]["key"] for c in world.calls]
    for call in world.calls:  # the EventBridge "Object Created" event the S3 path reads
        assert (call["source"], call["detail-type"]) == ("aws.s3", "Object Created")
        assert call["detail"]["bucket"]["name"] == BUCKET and call["detail"]["object"]["etag"]
    for key, rows in objects.items():
        marker = json.loads(
            world.s3.get_object(Bucket=BUCKET, Key=key.replace("incoming/", "predictions/") + ".done.json")[
                "Body"
            ].read()
        )
        assert (marker["status"], marker["rows"], marker["predicted"]) == ("done", len(rows), len(rows)), marker
        predictions = read_predictions(world.s3, BUCKET, marker["outputs"]["predictions"])
        got = np.asarray([p["prediction"] for p in predictions])
        assert float(np.max(np.abs(got - churn_reference(rows)))) <= 1e-5, key
    table = pq.read_table(
        io.BytesIO(world.s3.get_object(Bucket=BUCKET, Key="predictions/part/lake.parquet.parquet")["Body"].read())
    )
    assert float(np.max(np.abs(table.column("output_0").to_numpy() - churn_reference(lake)[:, 0]))) <= 1e-5
    listed = [o["Key"] for o in world.s3.list_objects_v2(Bucket=BUCKET, Prefix="bulk-results/").get("Contents", [])]
    assert any(k.endswith("/manifest.json") for k in listed), listed
    assert "Contents" not in world.s3.list_objects_v2(Bucket=BUCKET, Prefix="predictions/other/")


def test_a_child_failing_with_model_unavailable_is_retried_and_one_failing_with_invalid_input_is_not(
    world: World,
) -> None:
    for i in range(2):
        world.s3.put_object(
            Bucket=BUCKET, Key=f"incoming/retry/{i}.csv", Body=csv_bytes(churn_rows(5, seed=i), COLUMNS)
        )
    one_at_a_time = for_moto(definition_as_written(MaxConcurrency="1"), keep_results=False)

    world.faults = ["ModelUnavailable"]  # a cold model that could not load, once
    done = world.run(one_at_a_time, {"prefix": "incoming/retry/"})
    assert done["status"] == "SUCCEEDED", done
    assert len(world.calls) == 3, "the failed invocation was not retried (or was retried more than once)"

    world.calls.clear()
    world.faults = ["InvalidInput"]  # e.g. a batch over MAX_BATCH_SIZE: retrying cannot help
    done = world.run(one_at_a_time, {"prefix": "incoming/retry/"})
    keys = [c["detail"]["object"]["key"] for c in world.calls]
    assert len(keys) == 2 and len(set(keys)) == 2, f"an InvalidInput was retried: {keys}"
    [run] = world.sfn.list_map_runs(executionArn=done["executionArn"])["mapRuns"]
    record = world.sfn.describe_map_run(mapRunArn=run["mapRunArn"])
    assert record["itemCounts"]["failed"] == 1 and record["itemCounts"]["succeeded"] == 1, record["itemCounts"]
    assert record["maxConcurrency"] == 1, "MaxConcurrencyPath did not read the Settings state's number"
    # Step Functions fails the run here (0% tolerated: States.ExceedToleratedFailureThreshold); moto records the
    # failed item but does not apply the tolerance, so the execution's own status is not checked.


@pytest.mark.parametrize("rows_of", ["RowsOfACsv", "RowsOfJsonLines", "RowsOfAParquet"])
def test_a_batch_short_of_time_goes_back_to_the_function_until_whole_and_a_timeout_redoes_only_its_piece(
    world: World, rows_of: str
) -> None:
    """Each Map's child, as template.yaml writes it, run as a state machine of its own (moto runs no
    ItemBatcher: module docstring) on a batch of 200 items, the function 1 s from its deadline (under the
    2 s margin: 64 items per invocation). The third invocation times out before it answers."""

    class ShortOfTime(LambdaContext):
        def get_remaining_time_in_millis(self) -> int:
            return 1_000

    child = definition_as_written()["States"][rows_of]["ItemProcessor"]
    machine = {"StartAt": child["StartAt"], "States": child["States"]}
    rows = churn_rows(200, seed=3)
    items = as_csv_items(rows)
    assert items is not None
    world.context = ShortOfTime
    world.faults = [None, None, "Sandbox.Timedout"]  # a function killed at its deadline, as Step Functions names it

    done = world.run(machine, batch_event(items))

    assert done["status"] == "SUCCEEDED", done
    answer = json.loads(done["output"])
    assert set(answer) == {"predictions", "errors", "model_version"} and answer["errors"] == [], answer
    np.testing.assert_allclose(np.asarray(answer["predictions"]), churn_reference(rows), atol=1e-5)
    froms = [c["unfinished"]["from"] if "unfinished" in c else 0 for c in world.calls]
    assert froms == [0, 64, 128, 128, 192], froms  # the timed-out piece, and only it, was sent again
    assert world.calls[3] == world.calls[2]


def test_max_concurrency_comes_from_the_template_parameter(world: World) -> None:
    for i in range(6):
        world.s3.put_object(Bucket=BUCKET, Key=f"incoming/wide/{i}.csv", Body=csv_bytes(churn_rows(3, seed=i), COLUMNS))
    done = world.run(for_moto(definition_as_written(MaxConcurrency="1")), {"prefix": "incoming/wide/"})
    assert done["status"] == "SUCCEEDED", done
    assert len(world.calls) == 6 and world.most_in_flight == 1, world.most_in_flight


@pytest.mark.parametrize(
    ("execution_input", "cause"),
    [
        ({"bucket": BUCKET}, 'Start with {"key": '),
        ({"key": 5}, 'Start with {"key": '),
        ({"key": "incoming/notes.txt"}, "A key names one object whose rows are scored"),
    ],
    ids=["neither", "key_not_a_string", "unknown_format"],
)
def test_input_that_names_neither_rows_nor_objects_fails_with_invalid_input_saying_why(
    world: World, execution_input: dict[str, Any], cause: str
) -> None:
    done = world.run(for_moto(definition_as_written()), execution_input)
    assert (done["status"], done.get("error")) == ("FAILED", "InvalidInput"), done
    assert done["cause"].startswith(cause) and world.calls == []
