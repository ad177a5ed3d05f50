"""Our error types: each carries its HTTP status and a message that says what to fix.

A client's error (4xx) answers with its message, which names the client's own fields. A fault of ours
(5xx: the artifacts, the model source, the model, a bug) answers with its class's `public` text instead:
the message names files, S3 locations and settings, which the caller has no use for and must not see.
The message goes to the log, under the request id the answer carries.
"""

from __future__ import annotations

from dataclasses import dataclass


class SkewlessError(Exception):
    """Base of every error we raise on purpose; `status` is the HTTP answer."""

    status: int = 500
    code: str = "internal_error"
    # What a caller is told of this fault when it is ours (5xx): what happened in general and what to do.
    public: str = (
        "internal error: a fault of the service, not of the request; if it persists, give the operator the "
        "request_id (the log has the reason under it)"
    )

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def public_message(self) -> str:
        """The text a caller may see: the message for a client's error, the class's safe text for a fault of ours."""
        return self.message if self.status < 500 else self.public

    def to_body(self) -> dict[str, object]:
        return {"error": self.public_message, "code": self.code}


@dataclass(frozen=True)
class FieldError:
    """One problem with one feature of one instance of a request."""

    instance: int | None
    feature: str | None
    reason: str

    def to_dict(self) -> dict[str, object]:
        return {"instance": self.instance, "feature": self.feature, "reason": self.reason}

    def __str__(self) -> str:
        where = []
        if self.instance is not None:
            where.append(f"instance {self.instance}")
        if self.feature is not None:
            where.append(f"feature '{self.feature}'")
        return f"{', '.join(where) or 'request'}: {self.reason}"


class BadRequest(SkewlessError):
    """The request is not JSON, not a JSON object, or has the wrong content type."""

    status = 400
    code = "bad_request"


class NotFound(SkewlessError):
    status = 404
    code = "not_found"


class PayloadTooLarge(SkewlessError):
    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(SkewlessError):
    """The body comes in a Content-Encoding we cannot decode (HTTP 415); `accepted` names the ones we can."""

    status = 415
    code = "unsupported_media_type"

    def __init__(self, message: str, accepted: str) -> None:
        super().__init__(message)
        self.accepted = accepted


# How many field errors a 422 lists before it summarises the rest.
MAX_LISTED_ERRORS = 100


class InvalidInput(SkewlessError):
    """The body is JSON but does not fit the model's input spec (HTTP 422)."""

    status = 422
    code = "invalid_input"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        shown = "; ".join(str(e) for e in errors[:5])
        more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} problem(s) with the request: {shown}{more}")

    def to_body(self) -> dict[str, object]:
        body = super().to_body()
        body["details"] = [e.to_dict() for e in self.errors[:MAX_LISTED_ERRORS]]
        if len(self.errors) > MAX_LISTED_ERRORS:
            body["details_truncated"] = len(self.errors) - MAX_LISTED_ERRORS
        return body


class NonFiniteOutput(InvalidInput):
    """The model answered NaN or infinity for some instance: never returned as an answer (HTTP 422)."""

    code = "non_finite_output"


class ArtifactError(SkewlessError):
    """model_artifacts/ is missing, tampered with, or inconsistent: we refuse to serve."""

    status = 503
    code = "artifacts_invalid"
    public = (
        "the model is unavailable: its files failed verification at start (a fault of the deployment, not of "
        "the request); give the operator the request_id (the log has the reason under it)"
    )


class ModelSourceError(ArtifactError):
    """MODEL_S3_URI could not be read (unreachable, denied, an object missing): we refuse to serve."""

    code = "model_source_unavailable"
    public = (
        "the model is unavailable: it could not be fetched from its source at start (a fault of the deployment, "
        "not of the request); retry later, or give the operator the request_id (the log has the reason under it)"
    )


class ModelLoadError(SkewlessError):
    """The model could not be loaded (unregistered custom object, bad file, ...)."""

    status = 503
    code = "model_unavailable"
    public = (
        "the model is unavailable: it could not be loaded (a fault of the service, not of the request); retry "
        "later, or give the operator the request_id (the log has the reason under it)"
    )


class ExportError(SkewlessError):
    """The export API refused to write artifacts that would not serve like training."""

    code = "export_refused"
