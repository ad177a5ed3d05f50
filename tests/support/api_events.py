"""API Gateway events around a request body, built from the sample events in events/."""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from tests.support.samcli import ROOT

PREDICT_PATH = "/v1/models/churn:predict"


@cache
def _template(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ROOT / "events" / name).read_text())
    return data


def http_api_event(body: Any, path: str = PREDICT_PATH, method: str = "POST") -> dict[str, Any]:
    """An HTTP API (payload 2.0) event, as API Gateway builds it for a `/{proxy+}` route."""
    event = copy.deepcopy(_template("http_api.json"))
    raw = json.dumps(body)
    event["rawPath"] = path
    event["requestContext"]["http"]["method"] = method
    event["requestContext"]["http"]["path"] = path
    event["headers"]["content-length"] = str(len(raw))
    event["body"] = raw
    event["isBase64Encoded"] = False
    return event


def rest_api_event(body: Any, path: str = PREDICT_PATH, method: str = "POST") -> dict[str, Any]:
    """A REST API (payload 1.0) proxy event, as API Gateway builds it for `/{proxy+}`."""
    event = copy.deepcopy(_template("api_gateway_rest.json"))
    raw = json.dumps(body)
    event["path"] = path
    event["httpMethod"] = method
    event["pathParameters"] = {"proxy": path.lstrip("/")}
    event["requestContext"]["path"] = f"/{event['requestContext'].get('stage', 'v1')}{path}"
    event["requestContext"]["httpMethod"] = method
    event["body"] = raw
    event["isBase64Encoded"] = False
    for headers in ("headers", "multiValueHeaders"):
        for key in list(event.get(headers) or {}):
            if key.lower() == "content-length":
                event[headers][key] = str(len(raw)) if headers == "headers" else [str(len(raw))]
    return event
