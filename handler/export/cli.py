"""`skewless export MODEL --requests REQUESTS.json --out DIR --name NAME --version V`: export a saved Keras model.

No Python to write: the model file (`.keras`, or `.h5`) is loaded with its custom-object modules imported
first (found from the current directory, as `python -m` finds them), then exported exactly as `export_model`
does, with REQUESTS.json's named v1 bodies as the sample requests and EXPECTED.json (if given) as what
training answered for each. `--training ROWS.jsonl` and `--validation ROWS.jsonl` (one row a line,
`{"inputs": {feature: value, ...}, "label": ...}`, the label for validation rows only) are export_model's
`training_data` and `validation_data`: baseline.json and quality_baseline.json. `--class-names` names a
classifier's scores (`class_names`); `--holdout ROWS.jsonl` (rows without labels, `holdout_data`),
`--drift-window` and `--false-alarm-rate` set how the drift thresholds are calibrated. It prints the files
it wrote and each runtime's verdict.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from handler.errors import ExportError

# What a folder holds tells which mistake it is; each answer says what to do instead.
_SAVED_MODEL = "saved_model.pb"
_KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def run(args: argparse.Namespace) -> int:
    """Load, export, report; every refusal is an ExportError (one line, `error: ...`), never a traceback."""
    from handler.export.api import export_model

    requests = _read_requests(args.requests)
    expected = _read_expected(args.expected) if args.expected is not None else None
    training = _read_rows(args.training, labelled=False)[0] if args.training is not None else None
    validation = _read_rows(args.validation, labelled=True) if args.validation is not None else None
    holdout = None
    if args.holdout is not None:
        holdout = _read_rows(args.holdout, labelled=False, option="--holdout", what="held-out rows")[0]
    modules = tuple(args.custom_object_modules)
    calibration = {"drift_window": args.drift_window, "false_alarm_rate": args.false_alarm_rate}
    with _cwd_first():
        _import(modules)
        model = _load(args.model, modules)
        manifest = export_model(
            model,
            None,
            requests,
            args.out,
            name=args.name,
            version=args.version,
            expected=expected,
            custom_object_modules=modules or None,
            training_data=training,
            validation_data=validation,
            problem=args.problem,
            quality_output=args.quality_output,
            class_names=args.class_names,
            holdout_data=holdout,
            **{k: v for k, v in calibration.items() if v is not None},
        )
    _report(args.out, manifest)
    return 0


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(path.read_text())
    except OSError as exc:
        raise ExportError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ExportError(f"{what} {path} is not valid JSON: {exc}") from None


def _read_requests(path: Path) -> dict[str, Any]:
    requests = _read_json(path, "the requests file")
    if not isinstance(requests, dict) or not requests:
        raise ExportError(
            f"the requests file {path} must be a JSON object of named v1 bodies, e.g. "
            '{"one_customer": {"instances": [...]}}: they become the golden cases'
        )
    return requests


def _read_expected(path: Path) -> dict[str, Any]:
    """Per case, one array (a JSON array) or arrays by output name (an object of JSON arrays)."""
    expected = _read_json(path, "the expected file")
    if not isinstance(expected, dict):
        raise ExportError(f"the expected file {path} must be a JSON object: per request name, training's outputs")
    out: dict[str, Any] = {}
    for case, answer in expected.items():
        try:
            if isinstance(answer, dict):
                out[case] = {name: np.asarray(values, dtype=np.float64) for name, values in answer.items()}
            else:
                out[case] = np.asarray(answer, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ExportError(f"the expected outputs of '{case}' in {path} are not arrays of numbers: {exc}") from None
    return out


def _read_rows(
    path: Path, labelled: bool, option: str = "--training", what: str = "training rows"
) -> tuple[dict[str, list[Any]], list[Any]]:
    """A JSON Lines file of rows, `{"inputs": {feature: value}, "label": ...}`: the columns (feature -> values, in
    file order) and the labels. The features are checked against the model's by the export; here, each line."""
    if labelled:
        option, what = "--validation", "validation rows"
    shape = '{"inputs": {feature: value, ...}, "label": ...}' if labelled else '{"inputs": {feature: value, ...}}'
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ExportError(f"cannot read the {what} {path} ({option}): {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ExportError(f"the {what} {path} ({option}) are not UTF-8 text") from None
    columns: dict[str, list[Any]] = {}
    labels: list[Any] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number} ({option})"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise ExportError(f"{where} is not JSON ({exc}): give one row a line, {shape}") from None
        inputs = record.get("inputs") if isinstance(record, dict) else None
        if not isinstance(inputs, dict) or not inputs:
            raise ExportError(f'{where} has no "inputs" object of feature -> value: give one row a line, {shape}')
        if labelled:
            if "label" not in record or record["label"] is None:
                raise ExportError(f'{where} has no "label": every validation row needs its true label, {shape}')
            labels.append(record["label"])
        if not columns:
            columns = {str(name): [] for name in inputs}
        elif set(inputs) != set(columns):
            raise ExportError(
                f"{where} has features {sorted(inputs)}, the lines before {sorted(columns)}: every row needs the same"
            )
        for name, value in inputs.items():
            columns[name].append(value)
    if not columns:
        raise ExportError(f"the {what} {path} ({option}) hold no row: give one row a line, {shape}")
    return columns, labels


@contextmanager
def _cwd_first() -> Iterator[None]:
    """The current directory first on sys.path while the model loads and exports, as `python -m` has it."""
    cwd = os.getcwd()
    sys.path.insert(0, cwd)
    try:
        yield
    finally:
        sys.path.remove(cwd)


def _import(modules: tuple[str, ...]) -> None:
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ExportError(
                f"--custom-object-module {module} cannot be imported from {os.getcwd()} ({exc}): run the export "
                f"from the folder that holds it"
            ) from None
        except Exception as exc:  # the user's module fails on import
            raise ExportError(f"--custom-object-module {module} fails on import: {type(exc).__name__}: {exc}") from None


def _refuse_folder(path: Path) -> None:
    if (path / _SAVED_MODEL).is_file():
        raise ExportError(
            f"{path} is a TensorFlow SavedModel, which holds the traced graph but not the Keras model: export from "
            f"the Keras model that produced it, saved as a .keras file (model.save('model.keras'))"
        )
    if (path / "manifest.json").is_file():
        raise ExportError(
            f"{path} is already an exported artifact: serve it (MODEL_DIR={path} python -m handler verify), or export "
            f"again from the .keras file it came from"
        )
    if (path / "model.keras").is_file():
        raise ExportError(
            f"{path} is a folder holding model.keras, not an artifact: export the file itself "
            f"(skewless export {path / 'model.keras'} ...)"
        )
    raise ExportError(f"{path} is a folder, not a model file: give the .keras file your training saved")


def _load(path: Path, modules: tuple[str, ...]) -> Any:
    """The Keras model in `path`: .keras with safe_mode (no Lambda code runs), .h5 as legacy Keras reads it."""
    if path.is_dir():
        _refuse_folder(path)
    if not path.is_file():
        raise ExportError(f"{path} not found: give the .keras file your training saved")
    if path.name.endswith(".weights.h5") or path.suffix.lower() not in _KERAS_SUFFIXES:
        raise ExportError(
            f"{path} is not a saved Keras model: give a .keras file (model.save('model.keras')) or an .h5 model "
            f"(weights alone cannot be served)"
        )
    import keras

    try:
        if path.suffix.lower() == ".keras":
            return keras.saving.load_model(path, compile=False, safe_mode=True)
        return keras.saving.load_model(path, compile=False)
    except Exception as exc:  # Keras raises bare TypeError/ValueError for what it cannot rebuild
        hint = (
            f"; check that --custom-object-module names every module that registers its custom layers "
            f"(now: {', '.join(modules)})"
            if modules
            else "; if it has custom layers, name the module that defines them with --custom-object-module"
        )
        raise ExportError(f"{path} does not load as a Keras model: {_first_line(exc)}{hint}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0].rstrip('.') if text else ''}"


def _report(out: Path, manifest: dict[str, Any]) -> None:
    model = manifest["model"]
    print(f"exported {model['name']} version {model['version']} to {out}:")
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        print(f"  {path.relative_to(out).as_posix()}  ({path.stat().st_size} bytes)")
    code = manifest.get("code", {})
    for entry in code.get("bundled", []):
        print(f"carried in code/: {entry['module']}")
    for entry in code.get("installed", []):
        print(f"of the environment, not copied: {entry['module']} ({entry['distribution']} {entry['version']})")
    for runtime, verdict in manifest["runtimes"].items():
        if verdict.get("golden_passed"):
            print(f"{runtime}: golden_passed")
        else:
            print(f"{runtime}: not served ({verdict.get('reason', 'no reason recorded')})")
