"""The Lambda entry points: tell the trigger apart by the event's shape, hand the event to its adapter.

`lambda_handler` accepts every trigger (the template wires it alone); the HTTP and direct handlers below skip the
guessing for a function wired to one trigger. `Function` is one deployed function (its
settings, its service, its HTTP API); the module builds one from the environment at import, as
a Lambda init does, and tests build others for other models.

The init reads the settings (a bad one fails it) and imports Powertools' logger and metrics, nothing more: the
service (the artifacts checked, numpy and the core), the HTTP routes and the observers are made by the first
event that needs them, so a cold start pays for each once, and only for what its trigger uses (issue 24;
PRELOAD_MODEL=true makes all of it, and loads the model, in the init).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

from handler.bootstrap import Started
from handler.errors import SkewlessError
from handler.observability import capture_lambda_handler, correlation_id, logger, metrics
from handler.settings import Settings
from handler.triggers import direct

if TYPE_CHECKING:
    from handler.core.service import Service
    from handler.monitoring.capture import Capture
    from handler.monitoring.emf import DriftWatch
    from handler.triggers.http.resolvers import HttpApi

Trigger = Literal[
    "rest", "http", "function_url", "alb", "s3", "eventbridge_s3", "s3_continue", "sqs", "map_batch", "direct"
]
HTTP_TRIGGERS = ("rest", "http", "function_url", "alb")

# One JMESPath for every trigger: the API's request id, the ALB trace id, S3's request id, SQS's message id.
CORRELATION_ID_PATH = (
    'requestContext.requestId || headers."x-amzn-trace-id" || '
    'Records[0].responseElements."x-amz-request-id" || Records[0].messageId || id'
)

# A health or metadata request has no application metric; that is normal, not worth a warning each time.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)
# numpy's OpenBLAS starts a thread per core as it is imported, which spins a while: about 50 ms of a cold start on
# 2 cores here, and a share of the CPU that Lambda caps below 1,769 MB. The serving path's numpy does no BLAS work
# (LiteRT and TensorFlow have threads of their own), so one thread; set before the first event imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def event_trigger(event: Any) -> Trigger:
    """Which trigger sent this event, from its shape alone.

    HTTP events are told first (no other AWS event has a requestContext), so that a function that serves HTTP
    imports nothing of the other triggers: a Map batch's module and the S3 path's only for events shaped so.
    """
    if not isinstance(event, dict):
        return "direct"
    context = event.get("requestContext")
    if isinstance(context, dict):
        if "elb" in context:
            return "alb"
        if event.get("version") == "2.0" and isinstance(context.get("http"), dict):
            # Function URLs and HTTP APIs send the same payload; only the domain tells them apart.
            return "function_url" if ".lambda-url." in str(context.get("domainName", "")) else "http"
        if "httpMethod" in event:
            return "rest"
    if "Items" in event or "unfinished" in event:  # what every Map batch has
        from handler.triggers import map_batch

        if map_batch.is_batch(event):
            return "map_batch"
    from handler.triggers.s3.checkpoint import is_continuation

    if is_continuation(event):
        return "s3_continue"
    records = event.get("Records")
    if isinstance(records, list) and records and isinstance(records[0], dict):
        source = records[0].get("eventSource")
        if source == "aws:s3":
            return "s3"
        if source == "aws:sqs":
            return "sqs"
    if event.get("source") == "aws.s3" and "detail-type" in event:
        return "eventbridge_s3"
    return "direct"


def _from_deploy_gate(context: Any) -> bool:
    """The invocation carries the deploy gate's ClientContext: its golden cases are not users' traffic."""
    custom = getattr(getattr(context, "client_context", None), "custom", None)
    if not isinstance(custom, dict) or "skewless" not in custom:
        return False
    from handler.deploy_gate import GATE_CUSTOM  # only for invocations that carry a ClientContext of ours

    return all(custom.get(k) == v for k, v in GATE_CUSTOM.items())


class Function:
    """One function: settings read once; the service (or why it could not start) and its adapters, each made when
    first asked for (the first event that needs it), or all in the init with PRELOAD_MODEL=true."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # The service and the routes are made with these settings, and the routes with this service, whenever
        # they are made: as if made now (a test may put another service or settings in place meanwhile).
        self._init_settings = settings
        self._opened: Started | None = None
        self._started: Started | None = None
        self._http_api: HttpApi | None = None
        self._drift: DriftWatch | None = None
        self._capture: Capture | None = None
        self._lock = threading.Lock()  # the local server answers on several threads
        if settings.preload_model:  # all of it in the init: the service, the model, its observers, the routes
            _ = self.http_api

    @property
    def started(self) -> Started:
        """The service (the artifacts checked, the model still lazy), or why it could not start."""
        return self._started if self._started is not None else self._open()

    @started.setter
    def started(self, started: Started) -> None:  # tests put a broken service in place
        self._started = started

    def _open(self) -> Started:
        """Open the service once, and attach its observers."""
        if self._opened is None:
            with self._lock:
                if self._opened is None:
                    from handler.bootstrap import start
                    from handler.monitoring import capture as data_capture
                    from handler.monitoring import emf as drift_metrics
                    from handler.monitoring import metrics as inference_metrics

                    settings = self._init_settings
                    started = start(settings)
                    if started.service is not None:
                        # They watch every batch the service serves, whatever the trigger.
                        inference_metrics.attach(started.service)
                        self._drift = drift_metrics.attach(started.service, settings)
                        self._capture = data_capture.attach(started.service, settings)
                    self._opened = started
        return self._opened

    @property
    def http_api(self) -> HttpApi:
        """The HTTP triggers' routes, bound to the service (or its startup error)."""
        if self._http_api is None:
            from handler.triggers.http.resolvers import HttpApi

            started = self._open()
            with self._lock:
                if self._http_api is None:
                    self._http_api = HttpApi(started, self._init_settings)
        return self._http_api

    @http_api.setter
    def http_api(self, http_api: HttpApi) -> None:
        self._http_api = http_api

    @property
    def drift(self) -> DriftWatch | None:
        """The drift watch, attached when the service opens (None: off, or no service)."""
        self._open()
        return self._drift

    @property
    def capture(self) -> Capture | None:
        """Data capture, attached when the service opens (None: off, or no service)."""
        self._open()
        return self._capture

    @property
    def service(self) -> Service | None:
        return self.started.service

    @service.setter
    def service(self, service: Service | None) -> None:  # tests put a broken service in place
        self.started = Started(service, self.started.error)

    @property
    def startup_error(self) -> SkewlessError | None:
        return self.started.error

    @startup_error.setter
    def startup_error(self, error: SkewlessError | None) -> None:
        self.started = Started(self.started.service, error)

    def dispatch(self, trigger: Trigger, event: Any, context: Any) -> Any:
        """Hand the event to the adapter of its trigger, and record the model load if this request paid for it."""
        service = self.service
        loads_before = service.model.loads if service is not None else 0
        if self.capture is not None:
            self.capture.begin(getattr(context, "aws_request_id", None), trigger)
        watch = contextlib.nullcontext() if not _from_deploy_gate(context) else _unobserved()
        try:
            with watch:
                return self._route(trigger, event, context)
        finally:
            if service is not None and service.model.loads > loads_before and service.model.load_seconds is not None:
                metrics.add_metric(
                    name="ModelLoadTime", unit=MetricUnit.Milliseconds, value=service.model.load_seconds * 1e3
                )
            if self.capture is not None:
                self.capture.flush()  # before the answer: a frozen container must not hold acknowledged rows

    def _route(self, trigger: Trigger, event: Any, context: Any) -> Any:
        if trigger in HTTP_TRIGGERS:
            return self.http_api.handle(trigger, event, context)  # type: ignore[arg-type]
        if trigger in ("s3", "eventbridge_s3"):
            labels_prefix = self.settings.labels_prefix
            if labels_prefix:
                from handler.triggers import labels  # lazily: only for S3 events, with a labels prefix set

                if labels.names_labels(event, labels_prefix):  # ground truth, joined with the captured rows
                    return labels.handle_event(event, context, self.started.require(), self.settings)
            from handler.triggers.s3 import job as s3  # lazily: HTTP-only functions never import the file readers

            return s3.handle_event(event, context, self.started.require(), self.settings)
        if trigger == "s3_continue":  # a long S3 job going on from its checkpoint, in a new invocation
            from handler.triggers.s3 import job

            return job.handle_continuation(event, context, self.started.require(), self.settings)
        if trigger == "sqs":
            from handler.triggers import sqs

            if self.started.service is None:  # every message back to SQS, as for any fault of ours
                return sqs.fail_all(event, self.started.error or SkewlessError("the service did not start"))
            return sqs.handle_event(event, context, self.started.service, self.settings)
        if trigger == "map_batch":
            from handler.triggers import map_batch

            # A bad item is answered in the batch; a fault of ours fails it, for the Map's Retry to see.
            return direct.guarded(lambda: map_batch.handle_event(event, self.started.require(), context), context)
        return direct.handle_event(event, context, self.started, self.settings.direct_errors)

    def handler(self, trigger: Trigger | None = None) -> Callable[[Any, Any], Any]:
        """A Lambda handler with Powertools' logger, tracer and metrics around `dispatch`."""

        @capture_lambda_handler
        @metrics.log_metrics(capture_cold_start_metric=True)
        def handle(event: Any, context: Any) -> Any:
            return self.dispatch(trigger or event_trigger(event), event, context)

        if _logs_events():
            # Powertools logs the event after setting the correlation id: its own decorator keeps that order.
            traced = logger.inject_lambda_context(correlation_id_path=CORRELATION_ID_PATH, clear_state=True)(handle)
        else:
            # The same correlation id, found in plain Python (JMESPath took ~10 us a call), set at the same point.
            def correlated(event: Any, context: Any) -> Any:
                logger.set_correlation_id(correlation_id(event))
                return handle(event, context)

            traced = logger.inject_lambda_context(clear_state=True)(correlated)

        def entry(event: Any, context: Any) -> Any:
            result = traced(event, context)
            if isinstance(result, direct.Failure):
                # Raised here, past the decorators: the runtime reports this one frame, nothing below it.
                raise result.error from None
            return result

        return entry


def _unobserved() -> contextlib.AbstractContextManager[None]:
    from handler.core.service import unobserved  # only for the deploy gate's invocations

    return unobserved()


def _logs_events() -> bool:
    """POWERTOOLS_LOGGER_LOG_EVENT, read as Powertools' inject_lambda_context reads it."""
    return resolve_truthy_env_var_choice(env=os.getenv(constants.LOGGER_LOG_EVENT_ENV, "false"), choice=None)


function = Function(Settings.from_env())

lambda_handler = function.handler()
rest_api_handler = function.handler("rest")
http_api_handler = function.handler("http")
function_url_handler = function.handler("function_url")
alb_handler = function.handler("alb")
direct_handler = function.handler("direct")
