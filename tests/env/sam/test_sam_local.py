"""`sam build`, `sam local invoke` with every file in events/, `sam local start-api` with every
golden case: the image that would be deployed gives the answers recorded at training time."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ARTIFACTS, EVENTS
from tests.env.sam.conftest import DATA_BUCKET, FUNCTION, SamProject
from tests.support import zoo
from tests.support.runtime_emulator import free_port

pytestmark = pytest.mark.sam

GOLDEN: dict[str, Any] = json.loads((ARTIFACTS / "golden.json").read_text())
CASES = GOLDEN["cases"]
ZOO_MODEL = "recommender"  # two named inputs and outputs, an Embedding: the one furthest from churn
S3_CASE = next(c for c in CASES if c["name"] == "batch_of_100")  # dict rows: they become CSV rows
EVENT_FILES = sorted(p.name for p in EVENTS.glob("*.json"))


def _golden_for(request: Any) -> dict[str, Any]:
    key = json.dumps({k: v for k, v in request.items() if k != "request_id"}, sort_keys=True)
    for case in CASES:
        if json.dumps(case["request"], sort_keys=True) == key:
            return case
    raise AssertionError(f"the event's request is not a golden case: {key[:200]}")


def _assert_golden(case: dict[str, Any], actual: Any, via: str, model: str = "churn") -> None:
    zoo.check_v1(model, case, actual, via)


def _invoke(project: SamProject, event_file: Path, env_vars: Path | None = None) -> Any:
    done = project.run(
        "local", "invoke", FUNCTION, "-t", str(project.built_template), "-e", str(event_file),
        "--env-vars", str(env_vars or project.env_vars_file), "--skip-pull-image",
    )  # fmt: skip
    assert done.returncode == 0, f"sam local invoke -e {event_file.name}:\n{done.stderr[-4000:]}"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, f"no result from sam local invoke -e {event_file.name}:\n{done.stderr[-4000:]}"
    try:
        return json.loads(lines[-1])
    except ValueError:  # a timeout's text, say: show it and the log rather than a JSONDecodeError
        raise AssertionError(
            f"sam local invoke -e {event_file.name} answered {lines[-1][:2000]!r}:\n{done.stderr[-4000:]}"
        ) from None


def _http_body(result: dict[str, Any]) -> tuple[int, Any]:
    raw = result.get("body") or ""
    if result.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode()
    return int(result["statusCode"]), json.loads(raw)


def _seed_s3_input(project: SamProject, key: str) -> None:
    rows = S3_CASE["request"]["instances"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    s3 = project.aws.client("s3")
    s3.put_object(Bucket=DATA_BUCKET, Key=key, Body=out.getvalue().encode())
    listed = s3.list_objects_v2(Bucket=DATA_BUCKET, Prefix="predictions/").get("Contents", [])
    for obj in listed:  # so this invoke has to write the outputs itself
        s3.delete_object(Bucket=DATA_BUCKET, Key=obj["Key"])


def _s3_key_of(event: dict[str, Any]) -> str:
    from urllib.parse import unquote_plus

    if "Records" in event:
        return unquote_plus(event["Records"][0]["s3"]["object"]["key"])
    return str(event["detail"]["object"]["key"])


def test_sam_build_verified_golden_outputs_in_the_image(project: SamProject) -> None:
    # The build step ran verify (or reused its cached layer, made from these very files); the
    # built image, run on its own, must pass it too.
    assert "-m handler verify" in project.build_log, project.build_log[-3000:]
    built = project.built_template.read_text()
    # The inference function and the pre-traffic gate run the same image: one build, one ImageUri.
    images = set(re.findall(r"ImageUri:\s*(\S+)", built))
    assert len(images) == 1, f"sam build made {len(images)} images for one Dockerfile: {sorted(images)}"
    [image] = images
    done = project.engine.run(
        "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-m", "handler", "verify", check=False
    )
    assert done.returncode == 0 and "golden cases of 'churn' match training" in done.stdout, done.stdout + done.stderr
    print(f"sam build took {project.build_seconds:.0f} s")


@pytest.mark.parametrize("name", EVENT_FILES)
def test_sam_local_invoke_event_file(project: SamProject, name: str) -> None:
    path = EVENTS / name
    event = json.loads(path.read_text())
    if "Records" in event and event["Records"][0].get("eventSource") == "aws:s3" or event.get("source") == "aws.s3":
        key = _s3_key_of(event)
        _seed_s3_input(project, key)
        result = _invoke(project, path)
        s3 = project.aws.client("s3")
        assert key.endswith(".csv"), key  # seeded as CSV: the predictions are CSV too
        out_key = "predictions/" + key[len("incoming/") :] + ".csv"
        body = s3.get_object(Bucket=DATA_BUCKET, Key=out_key)["Body"].read().decode()
        header, *records = csv.reader(io.StringIO(body, newline=""))
        assert header == ["row", "output_0"] and [int(r[0]) for r in records] == list(range(len(records))), body
        predictions = [[float(value)] for _, value in records]
        _assert_golden(S3_CASE, {"predictions": predictions}, f"{name} -> s3://{DATA_BUCKET}/{out_key}")
        return
    result = _invoke(project, path)
    if "Records" in event:  # SQS: no failed message, and every result on the results queue
        assert result == {"batchItemFailures": []}, result
        sqs = project.aws.client("sqs")
        # A message without its own request_id is answered under its SQS message id.
        bodies = [(json.loads(r["body"]), r["messageId"]) for r in event["Records"]]
        wanted = {body.get("request_id", message_id): body for body, message_id in bodies}
        got: dict[str, Any] = {}
        deadline = time.monotonic() + 10
        while set(got) != set(wanted) and time.monotonic() < deadline:
            for message in sqs.receive_message(QueueUrl=project.results_queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                body = json.loads(message["Body"])
                got[body["request_id"]] = body
                sqs.delete_message(QueueUrl=project.results_queue_url, ReceiptHandle=message["ReceiptHandle"])
        assert set(got) == set(wanted), f"results for {sorted(got)}, expected {sorted(wanted)}"
        for request_id, request in wanted.items():
            answer = {k: v for k, v in got[request_id].items() if k in ("predictions", "outputs")}
            _assert_golden(_golden_for(request), answer, f"{name} ({request_id})")
        return
    if "statusCode" in result:
        status, body = _http_body(result)
        assert status == 200, f"{name}: HTTP {status}: {body}"
        _assert_golden(_golden_for(json.loads(event["body"])), body, name)
        return
    if "Items" in event:  # a Distributed Map batch: one answer per item, in order, training's
        assert result["errors"] == [] and result["model_version"] == "1", result
        _assert_golden(_golden_for_items(event["Items"]), {"predictions": result["predictions"]}, name)
        return
    _assert_golden(_golden_for(event), result, name)


def _golden_for_items(items: list[Any]) -> dict[str, Any]:
    """The golden case whose rows, every value as a CSV ItemReader gives it (text), are the batch's items."""
    for case in CASES:
        rows = case["request"].get("instances")
        if isinstance(rows, list) and all(isinstance(r, dict) for r in rows):
            as_text = [{k: v if isinstance(v, str) else json.dumps(v) for k, v in r.items()} for r in rows]
            if as_text == items:
                return case
    raise AssertionError("the batch's items are no golden case's rows")


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sam local start-api exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(1)
    raise AssertionError(f"start-api not ready after {seconds:.0f} s:\n{log.read_text()[-4000:]}")


def _post(url: str, body: Any) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def test_sam_local_start_api_answers_every_golden_case(project: SamProject, tmp_path: Path) -> None:
    """One warm start-api session (EAGER containers) for all golden cases, over real HTTP."""
    port = free_port()
    log = tmp_path / "start-api.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(project.sam), "local", "start-api", "-t", str(project.built_template), "--host", "127.0.0.1",
             "--port", str(port), "--env-vars", str(project.env_vars_file), "--skip-pull-image",
             "--warm-containers", "EAGER"],
            env=project.env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/v2/health/live", proc, log)
        failures = []
        start = time.monotonic()
        for case in CASES:
            status, body = _post(f"{base}/v1/models/churn:predict", case["request"])
            if status != 200:
                failures.append(f"{case['name']}: HTTP {status}: {str(body)[:200]}")
                continue
            try:
                zoo.check_v1("churn", case, body, "start-api")
            except AssertionError as exc:
                failures.append(str(exc).splitlines()[0])
        per_request = (time.monotonic() - start) / len(CASES)
        assert not failures, "start-api answers differ from golden:\n" + "\n".join(failures)
        print(f"start-api: {len(CASES)} golden cases, {per_request * 1e3:.0f} ms per request (warm)")
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: SAM stops and removes its warm containers
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_sam_local_invoke_serves_a_zoo_model_chosen_by_model_dir(project: SamProject, tmp_path: Path) -> None:
    """The same image serves another model of model_artifacts/ when MODEL_DIR names it: direct and HTTP API events."""
    env = json.loads(project.env_vars_file.read_text())
    env[FUNCTION]["MODEL_DIR"] = f"/var/task/model_artifacts/{ZOO_MODEL}"
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps(env))
    http_template = json.loads((EVENTS / "http_api.json").read_text())
    for case in zoo.cases(ZOO_MODEL)[:3]:
        direct = tmp_path / "direct.json"
        direct.write_text(json.dumps(case["request"]))
        _assert_golden(case, _invoke(project, direct, env_file), f"sam local invoke ({ZOO_MODEL})", ZOO_MODEL)
        path = f"/v1/models/{ZOO_MODEL}:predict"
        http = {**http_template, "rawPath": path, "body": json.dumps(case["request"]), "isBase64Encoded": False}
        http["requestContext"] = {
            **http_template["requestContext"],
            "http": {**http_template["requestContext"]["http"], "path": path},
        }
        event = tmp_path / "http.json"
        event.write_text(json.dumps(http))
        status, body = _http_body(_invoke(project, event, env_file))
        assert status == 200, f"{ZOO_MODEL}/{case['name']} over an HTTP API event: HTTP {status}: {body}"
        _assert_golden(case, body, f"sam local invoke HTTP API ({ZOO_MODEL})", ZOO_MODEL)
