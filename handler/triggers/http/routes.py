"""What a route is: a method, a rule, an endpoint and its documentation, declared once in a protocol's table.

`endpoints_v1.py` (TF Serving REST, KServe v1) and `endpoints_v2.py` (the Open Inference Protocol v2 and
Triton's extensions) each hold one `ROUTES` table. `resolvers.py` answers every HTTP trigger from one `Table` of
them, which finds a request's route by Powertools' rules and computes the 405 answers. An endpoint is a plain
function, `endpoint(call, **path parameters)`: `Call` carries the one request it answers (no state on shared
objects).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from handler.core import inference_ids
from handler.core.service import Service
from handler.core.value_rules import kind_of
from handler.errors import BadRequest, ModelLoadError, NotFound
from handler.monitoring.stats import STATS
from handler.observability import logger
from handler.triggers.http import body as http_body
from handler.triggers.http.errors import MethodNotAllowed
from handler.triggers.http.proxy import APPLICATION_JSON, Response

if TYPE_CHECKING:
    from handler.triggers.http.proxy import Request
    from handler.triggers.http.resolvers import HttpApi

Endpoint = Callable[..., Any]  # endpoint(call: Call, **path parameters) -> the answer


@dataclass(frozen=True)
class Doc:
    """How GET /openapi.json describes a route; models are named in `openapi.py`, imported only when it is asked for.

    `errors`: the error statuses the route can answer (every one when empty).
    """

    ok: str
    body: str | None = None
    answer: str | None = None
    errors: tuple[int, ...] = ()


@dataclass(frozen=True)
class Route:
    """One route: `rule` in Powertools' syntax (`<name>` is a path parameter); `doc` None: Powertools' defaults."""

    method: str
    rule: str
    endpoint: Endpoint
    summary: str
    tags: tuple[str, ...]
    doc: Doc | None = None
    in_schema: bool = True

    @property
    def parameters(self) -> list[str]:
        return re.findall(r"<(\w+)>", self.rule)


# Powertools' route syntax and matching, as its resolvers had them (event_handler/api_gateway.py): a `<name>`
# takes one or more of these characters, and the whole path must match.
_SAFE_URI = "-._~()'!*:@,;=+&$"
_UNSAFE_URI = r"%<> \[\]{}|^"
_PARAMETER = rf"(?P\1[{_SAFE_URI}{_UNSAFE_URI}\\w]+)"


def _rule_regex(rule: str) -> re.Pattern[str]:
    return re.compile("^{}$".format(re.sub(r"(<\w+>)", _PARAMETER, rule)))


def _strict_regex(rule: str) -> re.Pattern[str]:
    # Powertools lets a path parameter contain ':' (so "/v1/models/<name>" also matches
    # "/v1/models/churn:predict"); model names never do, so for 405/404 decisions we exclude it.
    parts = re.split(r"<\w+>", rule)
    return re.compile("^" + "[^/:]+".join(re.escape(p) for p in parts) + "$")


class Table:
    """Every route of every protocol, and which methods a path takes (for the 405 answers)."""

    def __init__(self, *tables: tuple[Route, ...]) -> None:
        self.routes = tuple(route for table in tables for route in table)
        self._strict = [(route.method, _strict_regex(route.rule)) for route in self.routes]
        # As Powertools tries them: rules without a parameter first, then the others, each in table order.
        ordered = sorted(self.routes, key=lambda route: "<" in route.rule)
        self._by_method: dict[str, list[tuple[re.Pattern[str], Route]]] = {}
        for route in ordered:
            self._by_method.setdefault(route.method.upper(), []).append((_rule_regex(route.rule), route))

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route that answers `method` (upper case) on `path`, and its path parameters; None: no route does."""
        for rx, route in self._by_method.get(method, ()):
            found = rx.match(path)
            if found:
                return route, found.groupdict()
        return None

    def allowed_methods(self, path: str) -> list[str]:
        """Methods that some route accepts on this path (empty: no route has this path)."""
        return sorted({method for method, rx in self._strict if rx.match(path)})


@dataclass(frozen=True)
class Call:
    """One request as an endpoint sees it: the API it came to, its event and context, its binary body if any."""

    api: HttpApi
    trigger: str
    event: Request
    context: Any
    binary: tuple[dict[str, Any], bytes] | None = None

    @property
    def request_id(self) -> str:
        return str(getattr(self.context, "aws_request_id", "unknown"))

    @property
    def inference_id(self) -> str:
        """The request's inference id: the client's X-Inference-Id (a 400 if it cannot be one), else the request id."""
        header = inference_ids.HEADER
        own = inference_ids.client_id(self.event.headers.get(header), f"the {header} header")
        return own or self.request_id

    @property
    def method(self) -> str:
        return self.event.http_method.upper()

    @property
    def path(self) -> str:
        return self.event.path

    def service(self) -> Service:
        """The service, or the reason it could not start (artifacts invalid: 503)."""
        return self.api.started.require()

    def served(self, name: str, version: str | None = None, label: str | None = None) -> Service:
        """The service if `name` (and `version` or `label`) is what is served here; else 404 (405 on a route)."""
        service = self.service()
        # A parameter holding ':' is Powertools reading "versions/1:predict" as version "1:predict" on a GET route:
        # that path is another route's, so its method is what is wrong (checked only then: it reads every route).
        if name != service.name or ":" in f"{version or ''}{label or ''}":
            allow = self.api.table.allowed_methods(self.path)
            if allow and self.method not in allow:
                raise MethodNotAllowed(self.method, self.path, allow)
        if name != service.name:
            raise NotFound(f"model '{name}' is not served here: this function serves '{service.name}'")
        served = service.artifacts.manifest.version
        if version is not None and version != served:
            raise NotFound(
                f"version {version} of model '{name}' is not served here: this function serves version {served}"
            )
        labels = self.api.settings.model_labels
        if label is not None and label not in labels:
            known = ", ".join(labels) or "none"
            raise NotFound(f"label '{label}' of model '{name}' is not served here (labels: {known}; MODEL_LABELS)")
        return service

    def has_body(self) -> bool:
        text = self.event.body
        return text is not None and text != "" and not text.isspace()  # as strip() would say, without a copy

    def json_body(self) -> Any:
        """The request's parsed JSON body; malformed or missing JSON is a 400 that says so."""
        if not self.has_body():
            raise BadRequest("the request has no body: send a JSON object")
        try:
            body = self.event.json_body
        except json.JSONDecodeError as exc:
            raise http_body.not_json(exc, self.event.headers.get("content-type")) from None
        if self.api.settings.log_request_values:
            logger.info("request body", extra={"body": body})
        if not isinstance(body, dict):
            raise BadRequest(f"the body must be a JSON object, got {kind_of(body)}")
        return body


def not_ready(call: Call, service: Service) -> str | None:
    """Why the model cannot serve, in words a caller may see (the reason itself is logged under the request id);
    None when it can. A failed load's reason may name a file or a setting: it is ours, not the caller's."""
    failed = service.load_failure()
    if failed is None:
        return None
    logger.warning("model not ready", extra={"reason": failed, "request_id": call.request_id})
    return ModelLoadError.public


def predicted(service: Service, columns: dict[str, Any], inference_id: str | None = None) -> Any:
    """The outputs of a batch (its rows' inference ids `inference_id/<row>`); a batch with any row unanswerable is
    refused.

    Every HTTP inference comes through here: it is counted, success or failure, in Triton's statistics.
    """
    ids = inference_ids.RowIds(inference_id) if inference_id is not None else None
    with STATS.request(service):
        prediction = service.run(columns, ids=ids)
        prediction.raise_for_problems()
    return prediction.outputs


def identified(body: Any, inference_id: str) -> Response:
    """A prediction's answer, with the inference id its rows were given (`<id>/<row>` names each row)."""
    return Response(200, APPLICATION_JSON, body, headers={inference_ids.HEADER: inference_id})
