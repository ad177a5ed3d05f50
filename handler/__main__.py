"""Command line: `skewless verify | predict BODY | invoke EVENT | serve | drift SOURCE | quality CAPTURED LABELS |
export MODEL`
(or `python -m handler ...`)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from handler.bootstrap import open_service  # noqa: E402
from handler.core.golden import replay, table  # noqa: E402
from handler.errors import SkewlessError  # noqa: E402
from handler.settings import Settings, SettingsError  # noqa: E402


def _verify(args: argparse.Namespace) -> int:
    service = open_service(Settings.from_env(), runtime=args.runtime)
    service.model.load()  # a load failure is one clear error, not one per case
    results = replay(service.artifacts.golden(), service.predict_v1, service.output_names)
    bad = [r for r in results if not r.ok]
    name = service.name
    if bad:
        print(f"{len(bad)} of {len(results)} golden cases of '{name}' DIFFER from training ({service.runtime}):\n")
        print(table(results))
        return 1
    worst = max(r.max_diff for r in results)
    print(f"all {len(results)} golden cases of '{name}' match training on {service.runtime} (max |diff| {worst:.3g})")
    if args.verbose:
        print(table(results, only_failures=False))
    return 0


def _predict(args: argparse.Namespace) -> int:
    try:
        body = json.loads(args.body)
    except json.JSONDecodeError as exc:
        print(json.dumps({"error": f"the body is not valid JSON: {exc.msg} at position {exc.pos}"}))
        return 2
    service = open_service(Settings.from_env())
    try:
        print(json.dumps(service.predict_v1(body)))
    except SkewlessError as exc:
        print(json.dumps(exc.to_body()))
        return 2
    return 0


def _invoke(args: argparse.Namespace) -> int:
    from handler.local_server import LocalContext

    try:
        with open(args.event_file) as fh:
            event = json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        print(f"error: cannot read the event file {args.event_file}: {exc}", file=sys.stderr)
        return 2
    from handler.observability import logger

    # Logs and EMF metrics go to stderr, so that stdout holds only what Lambda would return.
    stream = getattr(logger.registered_handler, "setStream", None)
    if stream is not None:
        stream(sys.stderr)
    with contextlib.redirect_stdout(sys.stderr):
        from handler.app import lambda_handler  # builds the service, as a Lambda init would

        try:
            result = lambda_handler(event, LocalContext())
        except Exception as exc:  # what Lambda answers for a failed invocation (DIRECT_ERRORS=raise)
            print(json.dumps({"errorType": type(exc).__name__, "errorMessage": str(exc)}, indent=2))
            return 1
    print(json.dumps(result, indent=2))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from handler.app import function, lambda_handler
    from handler.local_server import serve

    service = function.service

    hint = ""
    if service is not None:
        first = service.artifacts.golden()["cases"][0]["request"]
        hint = (
            "try:\n  curl -s {url}/v1/models/" + service.name + ":predict -H 'Content-Type: application/json' "
            f"-d '{json.dumps(first, separators=(',', ':'))}'"
        )
    return serve(lambda_handler, port=args.port, host=args.host, ready_hint=hint)


def _drift(args: argparse.Namespace) -> int:
    from handler.bootstrap import model_dir
    from handler.core.artifacts import Artifacts
    from handler.monitoring.report.report import run

    settings = Settings.from_env()
    try:
        artifacts = Artifacts.open(args.model_dir or model_dir(settings))
    except SkewlessError as exc:  # exit 1 means "drifted": a model that cannot be read is 2
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    threshold = args.threshold if args.threshold is not None else settings.drift_threshold
    return run(args.source, artifacts, threshold, html=args.html)


def _quality(args: argparse.Namespace) -> int:
    from handler.bootstrap import model_dir
    from handler.core.artifacts import Artifacts
    from handler.monitoring.quality.report import run

    try:
        artifacts = Artifacts.open(args.model_dir or model_dir(Settings.from_env()))
    except SkewlessError as exc:  # exit 1 means "degraded": a model that cannot be read is 2
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    return run(
        args.captured, args.labels, artifacts, args.problem, args.output, args.baseline, args.html, history=args.history
    )


def _digest(args: argparse.Namespace) -> int:
    from handler.core.artifacts import Manifest

    for folder in args.model_dir or [Settings.from_env().model_dir]:
        manifest = Manifest.load(folder)  # refuses a manifest whose content does not match its digest
        manifest.verify_files(folder)
        print(manifest.digest)
    return 0


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", type=Path, help="the saved Keras model: a .keras file (or .h5)")
    parser.add_argument("--requests", type=Path, required=True, help="a JSON object of named v1 request bodies")
    parser.add_argument("--out", type=Path, required=True, help="the artifact folder to write (replaced whole)")
    parser.add_argument("--name", required=True, help="the model's name, as clients address it")
    parser.add_argument("--version", required=True, help="the model's version")
    parser.add_argument("--expected", type=Path, help="per request name, training's outputs (arrays, or by output)")
    rows = 'JSON Lines, one row a line: {"inputs": {feature: value, ...}'
    parser.add_argument("--training", type=Path, help=f"training rows for baseline.json (drift): {rows}}}")
    parser.add_argument(
        "--validation", type=Path, help=f'held-out rows for quality_baseline.json: {rows}, "label": ...}}'
    )
    parser.add_argument("--problem", choices=("binary", "multiclass", "regression"), help="what the labels mean")
    parser.add_argument("--quality-output", help="the output the labels judge (a model with several outputs)")
    parser.add_argument("--holdout", type=Path, help=f"held-out rows the drift thresholds are calibrated on: {rows}}}")
    parser.add_argument(
        "--class-names",
        nargs="+",
        metavar="NAME",
        help="a classifier's class names, one per score of its output (two for one sigmoid score: negative positive)",
    )
    parser.add_argument(
        "--drift-window", type=int, help="rows per drift window the thresholds are calibrated for (default 1000)"
    )
    parser.add_argument(
        "--false-alarm-rate",
        type=float,
        help="the chance a window of training data raises a drift alarm, the features together (default 0.001)",
    )
    parser.add_argument(
        "--custom-object-module",
        dest="custom_object_modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module that registers the model's custom layers (repeatable): the artifact carries its source",
    )


def _export(args: argparse.Namespace) -> int:
    from handler.export.cli import run  # the export's imports (Keras) only for this command

    return run(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skewless", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="replay every golden case through coerce -> preprocess -> model")
    v.add_argument("-v", "--verbose", action="store_true", help="list every case, not only failures")
    v.add_argument(
        "--runtime",
        choices=("auto", "tensorflow", "litert"),
        help="the runtime to check (default: the one that will serve, from SERVING_RUNTIME)",
    )
    p = sub.add_parser("predict", help="print the v1 response for a v1 request body")
    p.add_argument("body", help='e.g. \'{"instances": [{"tenure_months": 3, ...}]}\'')
    i = sub.add_parser("invoke", help="run the Lambda handler on an event file and print what Lambda returns")
    i.add_argument("event_file", help="e.g. events/http_api.json")
    s = sub.add_parser("serve", help="serve the API locally: each request becomes an HTTP API (v2) event")
    s.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 3000), help="default: $PORT or 3000")
    s.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    d = sub.add_parser(
        "drift",
        help="compare served requests with the training baseline; exit 1 if anything drifted",
        description="Print a JSON drift report of a .csv, .jsonl or .parquet file (or of every object under "
        "s3://bucket/prefix/, data capture included) against the model's baseline.json. Exit status: "
        "0 nothing drifted, 1 something drifted, 2 the input or the model cannot be read.",
    )
    d.add_argument("source", help="a file, or s3://bucket/prefix/")
    d.add_argument("--html", type=Path, help="also write a self-contained page with one plot per feature")
    d.add_argument(
        "--threshold",
        type=float,
        help="score above which any feature drifted (default: DRIFT_THRESHOLD, or each feature's calibrated one)",
    )
    d.add_argument("--model-dir", type=Path, help="the model's artifacts (default: MODEL_DIR or MODEL_S3_URI)")
    q = sub.add_parser(
        "quality",
        help="join labels to captured rows by inference id; exit 1 if a metric is worse than training's",
        description="Print a JSON report of the model's quality on labelled captured rows: the problem type's "
        "metrics, each against quality_baseline.json (or --baseline), and the slices that fell most. Exit status: "
        "0 no metric degraded, 1 one did, 2 an input, the model or the baseline cannot be read.",
    )
    q.add_argument("captured", help="data capture's JSON Lines: a file, or s3://bucket/prefix/")
    q.add_argument("labels", help='labels, {"inference_id", "label"} or SageMaker\'s ground truth: a file or s3://...')
    q.add_argument("--problem", choices=("binary", "multiclass", "regression"), help="default: from the model")
    q.add_argument("--output", help="the output the labels judge (default: the model's one output)")
    q.add_argument("--baseline", type=Path, help="a quality baseline (default: the model's quality_baseline.json)")
    q.add_argument("--html", type=Path, help="also write a self-contained page: each metric against its baseline")
    q.add_argument(
        "--history", type=Path, help="with --html: a folder of earlier JSON reports (in name order) to draw over time"
    )
    q.add_argument("--model-dir", type=Path, help="the model's artifacts (default: MODEL_DIR or MODEL_S3_URI)")
    g = sub.add_parser("digest", help="print the artifact's manifest digest (what MODEL_DIGEST pins)")
    g.add_argument("model_dir", nargs="*", type=Path, help="artifact folders, one digest a line (default: MODEL_DIR)")
    e = sub.add_parser(
        "export",
        help="export a saved Keras model (.keras, .h5) with sample requests into an artifact folder",
        description="Load MODEL with its custom-object modules imported (from the current directory), serve every "
        "sample request through the serving code, and write the artifact folder, its custom code included.",
    )
    _export_arguments(e)
    args = parser.parse_args(argv)
    commands = {
        "verify": _verify,
        "predict": _predict,
        "invoke": _invoke,
        "serve": _serve,
        "drift": _drift,
        "quality": _quality,
        "digest": _digest,
        "export": _export,
    }
    try:
        return commands[args.command](args)
    except SkewlessError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except SettingsError as exc:  # an environment variable we cannot use: its name and why, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
