"""Tracing: X-Ray where Lambda traces, and no X-Ray SDK import (0.4 s of cold start) where it cannot."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import EVENTS, ROOT

PROBE = """
import json, sys
from handler.observability import capture_lambda_handler, tracing_enabled
def handler(event, context):
    return "ok"
wrapped = capture_lambda_handler(handler)
print(json.dumps({"enabled": tracing_enabled(), "wrapped": wrapped is not handler,
                  "xray": "aws_xray_sdk.core" in sys.modules}))
"""


def _probe(env: dict[str, str]) -> dict[str, bool]:
    base = {k: v for k, v in os.environ.items() if k not in ("POWERTOOLS_TRACE_DISABLED", "LAMBDA_TASK_ROOT")}
    run = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, check=True
    )
    result: dict[str, bool] = json.loads(run.stdout.strip().splitlines()[-1])
    return result


def test_outside_lambda_the_handler_is_not_wrapped_and_xray_is_not_imported() -> None:
    assert _probe({}) == {"enabled": False, "wrapped": False, "xray": False}


def test_tracing_can_be_turned_off_in_lambda() -> None:
    assert _probe({"LAMBDA_TASK_ROOT": "/var/task", "POWERTOOLS_TRACE_DISABLED": "true"})["wrapped"] is False


def test_in_lambda_the_handler_is_traced_with_xray() -> None:
    assert _probe({"LAMBDA_TASK_ROOT": "/var/task"}) == {"enabled": True, "wrapped": True, "xray": True}


# --- the warm path's plain-Python stand-ins for Powertools' per-call work give what Powertools gives ------

_KEYS = ["requestContext", "requestId", "headers", "x-amzn-trace-id", "Records", "responseElements",
         "x-amz-request-id", "messageId", "id", "other"]  # fmt: skip
_LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(-1, 1), st.floats(0.0, 1.0), st.sampled_from(["", "x", "Root=1-2"])
)
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(_KEYS), inner, max_size=4),
    max_leaves=12,
)


def _jmespath_correlation_id(event: Any) -> Any:
    from aws_lambda_powertools.utilities import jmespath_utils

    from handler.app import CORRELATION_ID_PATH

    return jmespath_utils.query(envelope=CORRELATION_ID_PATH, data=event)


def test_the_correlation_id_of_every_sample_event_is_the_one_jmespath_finds() -> None:
    from handler.observability import correlation_id

    for path in sorted(EVENTS.glob("*.json")):
        event = json.loads(path.read_text())
        assert correlation_id(event) == _jmespath_correlation_id(event), path.name


@settings(max_examples=400, deadline=None)
@given(event=_VALUES | st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=5))
def test_the_correlation_id_is_what_jmespath_finds_in_any_event(event: Any) -> None:
    from handler.observability import correlation_id

    expected = _jmespath_correlation_id(event)
    got = correlation_id(event)
    assert got == expected and type(got) is type(expected)


def test_add_metric_leaves_what_powertools_add_metric_leaves(capsys: Any) -> None:
    from aws_lambda_powertools.metrics import MetricUnit

    from handler.observability import add_metric, metrics

    def run(add: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        metrics.clear_metrics()
        capsys.readouterr()
        for i in range(230):  # past 100 values of one name: Powertools publishes a full set
            add("InferenceTime", MetricUnit.Milliseconds, 0.25 * i)
            if i % 3 == 0:
                add("BatchSize", MetricUnit.Count, i)
        left = {name: dict(m) for name, m in metrics.provider.metric_set.items()}
        published = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
        for blob in published:
            blob["_aws"].pop("Timestamp")
        metrics.clear_metrics()
        return left, published

    ours = run(add_metric)
    theirs = run(lambda name, unit, value: metrics.add_metric(name=name, unit=unit, value=value))
    assert ours == theirs
    assert ours[1], "the run should have published a full set at least once"
