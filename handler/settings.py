"""Environment -> one typed settings object, read once and validated."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from handler.core.defaults import DEFAULT_CUSTOM_OBJECT_MODULES

if TYPE_CHECKING:
    from handler.core.coerce import CoercePolicy

# The reference churn model; MODEL_DIR picks another folder of model_artifacts/ (or any export).
DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "model_artifacts" / "churn"


class SettingsError(ValueError):
    """An environment variable has a value we cannot use; the message names it."""


def _bool(env: Mapping[str, str], key: str, default: bool) -> bool:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    low = raw.strip().lower()
    if low in {"1", "true", "yes", "on"}:
        return True
    if low in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{key}={raw!r} is not a boolean: use true or false")


def _int(env: Mapping[str, str], key: str, default: int, minimum: int = 1) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingsError(f"{key}={value} must be at least {minimum}")
    return value


def _float(env: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{key}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise SettingsError(f"{key}={value} must lie in [{lo}, {hi}]")
    return value


def _choice(env: Mapping[str, str], key: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(key) or default
    if raw not in choices:
        raise SettingsError(f"{key}={raw!r} must be one of {', '.join(choices)}")
    return raw


def _modules(env: Mapping[str, str], key: str) -> tuple[str, ...]:
    raw = env.get(key)
    if raw is None or not raw.strip():
        return DEFAULT_CUSTOM_OBJECT_MODULES
    modules = tuple(m.strip() for m in raw.split(",") if m.strip())
    bad = [m for m in modules if not all(part.isidentifier() for part in m.split("."))]
    if bad:
        raise SettingsError(
            f"{key}={raw!r}: {', '.join(bad)} is not a module name (comma-separated, e.g. my_pkg.layers)"
        )
    return modules


@dataclass(frozen=True)
class Settings:
    model_dir: Path = DEFAULT_MODEL_DIR
    model_s3_uri: str | None = None
    # The manifest digest this function serves (`python -m handler digest`); None: any valid artifact.
    model_digest: str | None = None
    # Modules imported before loading the model, so its registered custom layers are found.
    custom_object_modules: tuple[str, ...] = DEFAULT_CUSTOM_OBJECT_MODULES
    # Where MODEL_S3_URI is downloaded to (Lambda's only writable disk is /tmp).
    model_cache_dir: Path = Path(tempfile.gettempdir())
    # A short budget: an unreachable model source should fail the init quickly, with the reason.
    model_s3_timeout: int = 10
    model_s3_max_attempts: int = 3
    preload_model: bool = False
    max_batch_size: int = 1024
    # API Gateway and Lambda cap synchronous payloads at 6 MB; refuse earlier with a clear 413.
    max_body_bytes: int = 6 * 1024 * 1024
    numeric_strings: str = "accept"
    non_finite: str = "reject"
    unknown_features: str = "reject"
    output_bucket: str | None = None
    output_prefix: str = "predictions/"
    input_prefix: str = "incoming/"
    results_queue_url: str | None = None
    results_s3_prefix: str = "sqs-results/"
    s3_chunk_rows: int = 0  # 0: sized by the model's inputs (`chunk_rows`)
    # Multipart part size for S3 outputs; S3 refuses parts under 5 MiB (except the last).
    s3_part_bytes: int = 8 * 1024 * 1024
    log_request_values: bool = False
    serving_runtime: str = "auto"
    # A direct invoke that cannot be answered: raise a typed error (Step Functions' Retry/Catch see it) or return it.
    direct_errors: str = "raise"
    # TF Serving version labels (/v1/models/{name}/labels/{label}) that name the served version.
    model_labels: tuple[str, ...] = ("stable",)
    # Rows per drift window (0: no drift watch); the score above which every feature is reported as drifted
    # (None, or DRIFT_THRESHOLD unset or 0: each feature's own, calibrated at export in baseline.json).
    drift_window: int = 1000
    drift_threshold: float | None = None
    # s3://bucket/prefix/ that sampled requests and answers are written to; None: nothing is captured.
    capture_s3_uri: str | None = None
    capture_sample_rate: float = 1.0
    # Objects created under this prefix of a bucket are ground-truth labels, joined with the captured rows (None: off).
    labels_prefix: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        s = cls(
            model_dir=Path(env.get("MODEL_DIR") or DEFAULT_MODEL_DIR),
            model_s3_uri=env.get("MODEL_S3_URI") or None,
            model_digest=env.get("MODEL_DIGEST") or None,
            custom_object_modules=_modules(env, "CUSTOM_OBJECT_MODULES"),
            model_cache_dir=Path(env.get("MODEL_CACHE_DIR") or tempfile.gettempdir()),
            model_s3_timeout=_int(env, "MODEL_S3_TIMEOUT", cls.model_s3_timeout),
            model_s3_max_attempts=_int(env, "MODEL_S3_MAX_ATTEMPTS", cls.model_s3_max_attempts),
            preload_model=_bool(env, "PRELOAD_MODEL", False),
            max_batch_size=_int(env, "MAX_BATCH_SIZE", cls.max_batch_size),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", cls.max_body_bytes),
            numeric_strings=_choice(env, "NUMERIC_STRINGS", "accept", ("accept", "reject")),
            non_finite=_choice(env, "NON_FINITE", "reject", ("reject", "impute")),
            unknown_features=_choice(env, "UNKNOWN_FEATURES", "reject", ("reject", "ignore")),
            output_bucket=env.get("OUTPUT_BUCKET") or None,
            output_prefix=env.get("OUTPUT_PREFIX") or cls.output_prefix,
            input_prefix=env.get("INPUT_PREFIX") or cls.input_prefix,
            results_queue_url=env.get("RESULTS_QUEUE_URL") or None,
            results_s3_prefix=env.get("RESULTS_S3_PREFIX") or cls.results_s3_prefix,
            s3_chunk_rows=0 if env.get("S3_CHUNK_ROWS") == "auto" else _int(env, "S3_CHUNK_ROWS", cls.s3_chunk_rows),
            s3_part_bytes=_int(env, "S3_PART_BYTES", cls.s3_part_bytes, minimum=5 * 1024 * 1024),
            log_request_values=_bool(env, "LOG_REQUEST_VALUES", False),
            serving_runtime=_choice(env, "SERVING_RUNTIME", "auto", ("auto", "tensorflow", "litert")),
            direct_errors=_choice(env, "DIRECT_ERRORS", "raise", ("raise", "return")),
            model_labels=tuple(x.strip() for x in (env.get("MODEL_LABELS") or "stable").split(",") if x.strip()),
            drift_window=_int(env, "DRIFT_WINDOW", cls.drift_window, minimum=0),
            drift_threshold=_float(env, "DRIFT_THRESHOLD", 0.0, 0.0, 100.0) or None,
            capture_s3_uri=env.get("CAPTURE_S3_URI") or None,
            capture_sample_rate=_float(env, "CAPTURE_SAMPLE_RATE", cls.capture_sample_rate, 0.0, 1.0),
            labels_prefix=env.get("LABELS_PREFIX") or None,
        )
        if 0 < s.drift_window < 100:
            # PSI's noise floor is about (bins - 1) / rows: under 100 rows it reaches the alarm threshold.
            raise SettingsError(f"DRIFT_WINDOW={s.drift_window}: use at least 100 rows (or 0 to turn the watch off)")
        s.check_capture(env)
        if s.model_digest is not None and not re.fullmatch(r"sha256:[0-9a-f]{64}", s.model_digest):
            raise SettingsError(
                f"MODEL_DIGEST={s.model_digest!r} must be 'sha256:' and 64 hex digits, "
                f"as `python -m handler digest` prints it"
            )
        if s.model_s3_uri is not None and not s.model_s3_uri.startswith("s3://"):
            raise SettingsError(f"MODEL_S3_URI={s.model_s3_uri!r} must look like s3://bucket/prefix/")
        prefixes = [("INPUT_PREFIX", s.input_prefix), ("OUTPUT_PREFIX", s.output_prefix)]
        for key, prefix in prefixes + ([("LABELS_PREFIX", s.labels_prefix)] if s.labels_prefix else []):
            if "*" in prefix or "?" in prefix:
                # The template grants s3 actions on "bucket/<prefix>*": a wildcard would widen them past the prefix.
                raise SettingsError(
                    f"{key}={prefix!r} holds '*' or '?', which IAM reads as wildcards: use a plain prefix"
                )
        if s.output_prefix.startswith(s.input_prefix) or s.input_prefix.startswith(s.output_prefix):
            raise SettingsError(
                f"OUTPUT_PREFIX={s.output_prefix!r} and INPUT_PREFIX={s.input_prefix!r} overlap: "
                f"the function would trigger itself on its own outputs"
            )
        labels = s.labels_prefix or ""
        for key, prefix in prefixes if labels else []:
            if labels.startswith(prefix) or prefix.startswith(labels):
                raise SettingsError(
                    f"LABELS_PREFIX={labels!r} and {key}={prefix!r} overlap: labels would be read as rows to "
                    f"predict, or the function's own outputs as labels"
                )
        return s

    def check_capture(self, env: Mapping[str, str]) -> None:
        """CAPTURE_S3_URI must be an S3 URI outside INPUT_PREFIX; a sample rate alone is a mistake."""
        if self.capture_s3_uri is None:
            if env.get("CAPTURE_SAMPLE_RATE"):
                raise SettingsError(
                    "CAPTURE_SAMPLE_RATE is set but CAPTURE_S3_URI is not: set both to capture requests"
                )
            return
        bucket, _, prefix = self.capture_s3_uri.removeprefix("s3://").partition("/")
        if not self.capture_s3_uri.startswith("s3://") or not bucket:
            raise SettingsError(f"CAPTURE_S3_URI={self.capture_s3_uri!r} must look like s3://bucket/prefix/")
        same_bucket = self.output_bucket is None or bucket == self.output_bucket
        if same_bucket and (prefix.startswith(self.input_prefix) or self.input_prefix.startswith(prefix)):
            raise SettingsError(
                f"CAPTURE_S3_URI={self.capture_s3_uri!r} overlaps INPUT_PREFIX={self.input_prefix!r}: the function "
                f"would trigger itself on what it captures"
            )

    def coerce_policy(self) -> CoercePolicy:
        from handler.core.coerce import CoercePolicy  # lazily: the settings are read at init, before numpy

        return CoercePolicy(
            numeric_strings=self.numeric_strings,  # type: ignore[arg-type]
            non_finite=self.non_finite,  # type: ignore[arg-type]
            unknown_features=self.unknown_features,  # type: ignore[arg-type]
            max_batch_size=self.max_batch_size,
        )
