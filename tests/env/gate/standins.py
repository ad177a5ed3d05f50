"""Two small HTTP servers on 127.0.0.1 for the pre-traffic gate's tests.

- `CodeDeployStandIn` IS A STAND-IN. CodeDeploy's lifecycle API has no local emulator (moto does not
  implement PutLifecycleEventHookExecutionStatus), so this server speaks just enough of CodeDeploy's
  JSON 1.1 protocol for boto3's codedeploy client: it records every request it receives and answers
  `PutLifecycleEventHookExecutionStatus` and `GetDeployment` (with the AppSpec a test gives it). It
  checks nothing CodeDeploy would check: what the tests assert is what the gate sent.
- `LambdaFront` routes the Lambda API's Invoke by function name, which the runtime interface
  emulator does not do (it answers only `/functions/function/invocations`): a request naming the
  expected qualified ARN is forwarded, body for body, to the emulator running the real function;
  any other name gets Lambda's 404 ResourceNotFoundException. It records the names it was asked
  for, and sets `X-Amz-Function-Error: Unhandled` on a function error, as Lambda's Invoke API does
  (the emulator does not).
"""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TARGET_PREFIX = "CodeDeploy_20141006."
INVOKE = "/2015-03-31/functions/{}/invocations"


@dataclass
class Received:
    operation: str
    body: dict[str, Any]


@dataclass
class CodeDeployStandIn:
    """Records what the gate sent to CodeDeploy; `app_spec` is what GetDeployment says it deploys."""

    app_spec: dict[str, Any] | None = None
    received: list[Received] = field(default_factory=list)
    endpoint: str = ""

    def statuses(self) -> list[dict[str, Any]]:
        return [r.body for r in self.received if r.operation == "PutLifecycleEventHookExecutionStatus"]

    def answer(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.received.append(Received(operation, body))
        if operation == "PutLifecycleEventHookExecutionStatus":
            return 200, {"lifecycleEventHookExecutionId": body.get("lifecycleEventHookExecutionId")}
        if operation == "GetDeployment":
            info: dict[str, Any] = {"deploymentId": body.get("deploymentId"), "computePlatform": "Lambda"}
            if self.app_spec is not None:
                content = json.dumps(self.app_spec)
                info["revision"] = {"revisionType": "AppSpecContent", "appSpecContent": {"content": content}}
            return 200, {"deploymentInfo": info}
        return 400, {"__type": "UnknownOperationException", "message": f"the stand-in does not answer {operation}"}


@dataclass
class LambdaFront:
    """Forwards Invoke for `function_arn` to the emulator at `emulator_url`; records every name asked for."""

    function_arn: str
    emulator_url: str
    asked: list[str] = field(default_factory=list)
    client_contexts: list[str | None] = field(default_factory=list)
    endpoint: str = ""

    def answer(self, path: str, payload: bytes, client_context: str | None = None) -> tuple[int, dict[str, str], bytes]:
        name = urllib.parse.unquote(path.split("/functions/", 1)[1].split("/invocations", 1)[0])
        self.asked.append(name)
        if name != self.function_arn:
            body = {"Type": "User", "message": f"Function not found: {name}"}
            return 404, {"x-amzn-ErrorType": "ResourceNotFoundException"}, json.dumps(body).encode()
        self.client_contexts.append(client_context)
        # The emulator hands X-Amz-Client-Context to the runtime, as Lambda does with Invoke's ClientContext.
        headers = {"X-Amz-Client-Context": client_context} if client_context else {}
        request = urllib.request.Request(self.emulator_url, data=payload, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=300) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        except urllib.error.URLError as err:
            body = {"Type": "Service", "message": f"the emulator did not answer: {err.reason}"}
            return 502, {"x-amzn-ErrorType": "ServiceException"}, json.dumps(body).encode()
        headers = {"X-Amz-Executed-Version": name.rsplit(":", 1)[1]}
        try:
            result = json.loads(raw)
        except ValueError:
            result = None
        if isinstance(result, dict) and {"errorType", "errorMessage"} <= set(result):
            headers["X-Amz-Function-Error"] = "Unhandled"
        return status, headers, raw


def _handler(server_obj: CodeDeployStandIn | LambdaFront) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's name)
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if isinstance(server_obj, CodeDeployStandIn):
                operation = (self.headers.get("X-Amz-Target") or "").removeprefix(TARGET_PREFIX)
                status, body = server_obj.answer(operation, json.loads(raw or b"{}"))
                self._send(status, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(body).encode())
            else:
                status, headers, payload = server_obj.answer(self.path, raw, self.headers.get("X-Amz-Client-Context"))
                self._send(status, {"Content-Type": "application/json", **headers}, payload)

        def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving(server_obj: CodeDeployStandIn | LambdaFront) -> Iterator[str]:
    """Serve on a free 127.0.0.1 port for the block; yields (and sets) the endpoint URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server_obj))
    server_obj.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server_obj.endpoint
    finally:
        server.shutdown()
        server.server_close()


def app_spec(function_name: str, current: str, target: str) -> dict[str, Any]:
    """A Lambda deployment's AppSpec as CodeDeploy documents it (version 0.0, one function resource)."""
    properties = {"Name": function_name, "Alias": "live", "CurrentVersion": current, "TargetVersion": target}
    return {
        "version": 0.0,
        "Resources": [{"InferenceFunction": {"Type": "AWS::Lambda::Function", "Properties": properties}}],
    }
