"""Command line: `python -m handler verify | predict BODY | invoke EVENT_FILE | serve`."""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from handler.bootstrap import open_service  # noqa: E402
from handler.core.golden import replay, table  # noqa: E402
from handler.errors import SkewlessError  # noqa: E402
from handler.settings import Settings  # noqa: E402


def _verify(args: argparse.Namespace) -> int:
    service = open_service(Settings.from_env(), runtime=args.runtime)
    service.model.load()  # a load failure is one clear error, not one per case
    results = replay(service.artifacts.golden(), service.predict_v1)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m handler", description=__doc__)
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
    args = parser.parse_args(argv)
    try:
        if args.command == "verify":
            return _verify(args)
        return _predict(args)
    except SkewlessError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
