"""CodeDeploy's pre-traffic gate: a new version gets traffic only once it gave training's answers.

Before CodeDeploy moves the `live` alias to a new version, it invokes this function (the same
image as the inference function, run with another command) with
`{"DeploymentId", "LifecycleEventHookExecutionId"}`. The gate:

1. reads the golden cases shipped in the image (`GOLDEN_MODEL_DIR`, checked against its manifest);
2. invokes the new version by its qualified ARN (`TARGET_VERSION_ARN`, set by the template to
   `!Ref InferenceFunction.Version`) through the Lambda API with every golden request, in every
   trigger shape that answers synchronously and writes nothing: a direct invoke, an HTTP API event
   (payload 2.0), a REST API event (payload 1.0), a Function URL event, and a Distributed Map batch
   (for the cases sent as named rows, which is what a Map item is);
3. compares each answer with training's outputs within the golden tolerance
   (`handler.core.golden`: training's values against the served answer);
4. logs a table of the cases that differ and reports `Succeeded` or `Failed` with
   `PutLifecycleEventHookExecutionStatus`.

Anything that keeps it from checking (a version it may not invoke, a golden file that does not
match its manifest, a deployment that shifts to another version than the one configured) is a
failure: no proof, no traffic. S3 and SQS events are not replayed: their answers are objects and
messages written to the stack's bucket and queues, which a gate must not touch; they share the
coercion, preprocessing and model that the shapes above go through.

Nothing here imports TensorFlow or Keras: the gate is small, and starts in a fraction of a second.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from handler.core.artifacts import GOLDEN_FILE, Manifest
from handler.core.golden import CaseResult, replay, table
from handler.errors import SkewlessError

log = logging.getLogger("skewless.gate")
log.setLevel(logging.INFO)

TRIGGERS = ("direct", "http_api", "rest_api", "function_url", "map_batch")
# arn:PARTITION:lambda:REGION:ACCOUNT:function:NAME:VERSION, a published version (not $LATEST, not an alias).
QUALIFIED_VERSION_ARN = re.compile(r"^(arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}):(\d+)$")
# The inference function's timeout is at most 900 s; one invocation may take that long.
# The gate's invocations say who they are (Lambda's ClientContext, `custom`): the function answers them as any
# other, but keeps them out of its drift windows and data capture, which are about users' traffic.
GATE_CUSTOM = {"skewless": "deploy-gate"}
GATE_CONTEXT = base64.b64encode(json.dumps({"custom": GATE_CUSTOM}).encode()).decode()
LAMBDA_CONFIG = Config(connect_timeout=10, read_timeout=905, retries={"max_attempts": 3, "mode": "standard"})


class GateError(Exception):
    """The gate cannot check the version (its configuration, the golden file, the deployment)."""


class Unanswered(SkewlessError):
    """The version answered a golden request with no answer to compare: a function error, an HTTP error."""

    code = "unanswered"


@dataclass(frozen=True)
class GateConfig:
    """What the gate checks: the version's qualified ARN, and the model folder holding the golden cases."""

    target_arn: str
    model_dir: Path

    @property
    def version(self) -> str:
        return self.target_arn.rsplit(":", 1)[1]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GateConfig:
        arn = env.get("TARGET_VERSION_ARN", "")
        if not QUALIFIED_VERSION_ARN.match(arn):
            raise GateError(
                f"TARGET_VERSION_ARN={arn!r} is not a published version's ARN "
                f"(arn:aws:lambda:REGION:ACCOUNT:function:NAME:NUMBER): set it to !Ref InferenceFunction.Version"
            )
        model_dir = env.get("GOLDEN_MODEL_DIR", "")
        if not model_dir:
            raise GateError("GOLDEN_MODEL_DIR is not set: set it to the served model's folder in the image")
        return cls(arn, Path(model_dir))


@dataclass(frozen=True)
class Golden:
    """The served model's name, its golden cases and its output names, as the export wrote them."""

    model_name: str
    cases: dict[str, Any]
    output_names: list[str]

    @classmethod
    def load(cls, model_dir: Path) -> Golden:
        try:
            manifest = Manifest.load(model_dir)
            manifest.verify_files(model_dir)
        except SkewlessError as exc:
            raise GateError(f"the golden cases in {model_dir} cannot be trusted: {exc.message}") from None
        data: dict[str, Any] = json.loads((model_dir / GOLDEN_FILE).read_text())
        if not data.get("cases"):
            raise GateError(f"{model_dir / GOLDEN_FILE} holds no golden case: nothing would prove the version")
        return cls(manifest.name, data, manifest.signature.output_names)


@dataclass(frozen=True)
class Verdict:
    """The gate's conclusion: every answer as training's, or why not."""

    results: list[CaseResult]
    reason: str = ""

    @property
    def passed(self) -> bool:
        return not self.reason and bool(self.results) and all(r.ok for r in self.results)

    def summary(self, config: GateConfig | None) -> dict[str, Any]:
        differing = [r.name for r in self.results if not r.ok]
        return {
            "status": "Succeeded" if self.passed else "Failed",
            "version": config.target_arn if config else None,
            "answers_checked": len(self.results),
            "differing": differing,
            "reason": self.reason or (f"{len(differing)} answer(s) differ from training" if differing else ""),
        }


# --- the events a trigger sends, and the v1 answer inside what the function returns ---------------------


def _http_v2_event(body: str, path: str, domain: str) -> dict[str, Any]:
    """An HTTP API (payload 2.0) or Function URL event for POST `path`: only the domain tells them apart."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": domain, "user-agent": "skewless-pretraffic-gate"},
        "requestContext": {
            "domainName": domain,
            "domainPrefix": domain.split(".", 1)[0],
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "requestId": "pretraffic-gate",
            "routeKey": "$default",
            "stage": "$default",
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _rest_v1_event(body: str, path: str) -> dict[str, Any]:
    """A REST API (payload 1.0) proxy event for POST `path` on the `/{proxy+}` resource."""
    headers = {"Content-Type": "application/json", "User-Agent": "skewless-pretraffic-gate"}
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": "POST",
        "headers": headers,
        "multiValueHeaders": {k: [v] for k, v in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": {"proxy": path.lstrip("/")},
        "stageVariables": None,
        "requestContext": {
            "httpMethod": "POST",
            "path": f"/v1{path}",
            "resourcePath": "/{proxy+}",
            "stage": "v1",
            "requestId": "pretraffic-gate",
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": body,
        "isBase64Encoded": False,
    }


def carries(trigger: str, request: Any) -> bool:
    """Whether a trigger can send this golden request: a Map batch carries named rows only (its items)."""
    if trigger != "map_batch":
        return True
    rows = request.get("instances") if isinstance(request, dict) and set(request) == {"instances"} else None
    return isinstance(rows, list) and bool(rows) and all(isinstance(r, dict) for r in rows)


def trigger_event(trigger: str, request: Any, model_name: str) -> Any:
    """The event `trigger` would send for a v1 request body."""
    if trigger == "direct":
        return request
    if trigger == "map_batch":
        return {"Items": request["instances"], "BatchInput": {"source": "skewless-pretraffic-gate"}}
    path, body = f"/v1/models/{model_name}:predict", json.dumps(request)
    if trigger == "http_api":
        return _http_v2_event(body, path, "gate.execute-api.local")
    if trigger == "function_url":
        return _http_v2_event(body, path, "gate.lambda-url.local.on.aws")
    if trigger == "rest_api":
        return _rest_v1_event(body, path)
    raise ValueError(f"unknown trigger {trigger!r}")


def v1_answer(trigger: str, result: Any) -> Any:
    """The TF Serving v1 answer inside what the function returned for `trigger`; Unanswered if none."""
    if trigger == "direct":
        return result
    if trigger == "map_batch":
        if not isinstance(result, dict) or "predictions" not in result:
            raise Unanswered(f"not a Map batch answer: {json.dumps(result)[:300]}")
        if result.get("errors"):
            raise Unanswered(f"items rejected: {json.dumps(result['errors'])[:300]}")
        return {"predictions": result["predictions"]}
    if not isinstance(result, dict) or "statusCode" not in result:
        raise Unanswered(f"not an API Gateway proxy answer: {json.dumps(result)[:300]}")
    raw = result.get("body") or ""
    if result.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode("utf-8", errors="replace")
    if result["statusCode"] != 200:
        raise Unanswered(f"HTTP {result['statusCode']}: {raw[:300]}")
    try:
        return json.loads(raw)
    except ValueError:
        raise Unanswered(f"HTTP 200 with a body that is not JSON: {raw[:300]}") from None


# --- the Lambda and CodeDeploy calls --------------------------------------------------------------------


def invoke_version(lambda_client: Any, arn: str) -> Callable[[Any], Any]:
    """A function that invokes the version synchronously with one event and returns what it returned."""

    def invoke(event: Any) -> Any:
        reply = lambda_client.invoke(
            FunctionName=arn, InvocationType="RequestResponse", Payload=json.dumps(event), ClientContext=GATE_CONTEXT
        )
        raw = reply["Payload"].read()
        try:
            payload = json.loads(raw) if raw else None
        except ValueError:
            raise Unanswered(f"the function returned something that is not JSON: {raw[:300]!r}") from None
        # Lambda marks a function error with X-Amz-Function-Error; the payload is {errorType, errorMessage}.
        failed = reply.get("FunctionError") or (
            isinstance(payload, dict) and {"errorType", "errorMessage"} <= set(payload)
        )
        if failed:
            kind = payload.get("errorType", reply.get("FunctionError")) if isinstance(payload, dict) else "error"
            message = payload.get("errorMessage", payload) if isinstance(payload, dict) else payload
            raise Unanswered(f"the invocation failed: {kind}: {str(message)[:300]}")
        return payload

    return invoke


def check_version(invoke: Callable[[Any], Any], golden: Golden) -> list[CaseResult]:
    """Every golden case in every trigger shape it fits, each answer compared with training's outputs."""
    results: list[CaseResult] = []
    for trigger in TRIGGERS:
        cases = [c for c in golden.cases["cases"] if carries(trigger, c["request"])]
        subset = {**golden.cases, "cases": cases}

        def answer(request: Any, trigger: str = trigger) -> Any:
            return v1_answer(trigger, invoke(trigger_event(trigger, request, golden.model_name)))

        results += [replace(r, name=f"{r.name} via {trigger}") for r in replay(subset, answer, golden.output_names)]
    return results


def deployment_target_version(codedeploy: Any, deployment_id: str) -> str | None:
    """The version CodeDeploy shifts `live` to, from the deployment's AppSpec (None where it says none)."""
    info = codedeploy.get_deployment(deploymentId=deployment_id).get("deploymentInfo", {})
    revision = info.get("revision") or {}
    content = (revision.get("appSpecContent") or revision.get("string") or {}).get("content")
    try:
        spec = json.loads(content) if content else {}
        for resource in spec.get("Resources", []):
            for entry in resource.values():
                version = entry.get("Properties", {}).get("TargetVersion")
                if version is not None:
                    return str(version)
    except (ValueError, AttributeError, TypeError):
        log.warning(
            "deployment %s: its AppSpec is not JSON as expected; the target version is not cross-checked", deployment_id
        )
    return None


def judge(config: GateConfig, deployment_id: str, lambda_client: Any, codedeploy: Any) -> Verdict:
    """Replay the golden cases against the version, unless the deployment shifts to another one."""
    target = deployment_target_version(codedeploy, deployment_id)
    if target is not None and target != config.version:
        return Verdict(
            [],
            (
                f"deployment {deployment_id} shifts to version {target}, but this gate is configured for "
                f"{config.target_arn}: the gate's configuration was not updated before the deployment started; "
                f"deploy again"
            ),
        )
    if target is None:
        log.info("deployment %s names no target version; checking %s", deployment_id, config.target_arn)
    golden = Golden.load(config.model_dir)
    results = check_version(invoke_version(lambda_client, config.target_arn), golden)
    return Verdict(results)


def run(event: Any, env: Mapping[str, str], lambda_client: Any, codedeploy: Any) -> dict[str, Any]:
    """Judge the version, log the verdict, report it to CodeDeploy; the summary is returned too."""
    if not isinstance(event, dict) or not event.get("DeploymentId") or not event.get("LifecycleEventHookExecutionId"):
        raise ValueError(
            f"not a CodeDeploy lifecycle hook event (DeploymentId, LifecycleEventHookExecutionId): {event!r}"
        )
    deployment_id, hook_id = event["DeploymentId"], event["LifecycleEventHookExecutionId"]
    config: GateConfig | None = None
    try:
        config = GateConfig.from_env(env)
        verdict = judge(config, deployment_id, lambda_client, codedeploy)
    except Exception as exc:  # no proof, no traffic: whatever stopped the check fails the deployment
        log.exception("deployment %s: the gate could not check the new version", deployment_id)
        verdict = Verdict([], f"{type(exc).__name__}: {exc}")
    summary = verdict.summary(config)
    if verdict.passed:
        log.info(
            "deployment %s: all %d answers of %s match training",
            deployment_id,
            len(verdict.results),
            summary["version"],
        )
    elif verdict.results and not verdict.reason:
        log.error(
            "deployment %s: %d of %d answers of %s differ from training:\n%s",
            deployment_id,
            len(summary["differing"]),
            len(verdict.results),
            summary["version"],
            table(verdict.results),
        )
    else:
        log.error("deployment %s: FAILED: %s", deployment_id, summary["reason"])
    codedeploy.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=hook_id, status=summary["status"]
    )
    return summary


def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
    """The hook's entry point: clients from the environment (AWS_ENDPOINT_URL_* in tests), then `run`."""
    lambda_client = boto3.client("lambda", config=LAMBDA_CONFIG)
    codedeploy = boto3.client("codedeploy", config=Config(retries={"max_attempts": 5, "mode": "standard"}))
    return run(event, os.environ, lambda_client, codedeploy)
