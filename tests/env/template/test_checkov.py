"""checkov on SAM's transformed template, as `make lint` runs it: no finding but those skipped, each for its reason,
in one place (.checkov.yaml).

checkov runs from its own venv (.venv-checkov, scripts/requirements-checkov.txt: its boto3 pin conflicts with ours),
created here when missing, as `make checkov` does; no request leaves the machine (a refusing proxy, --skip-download).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.env.template.test_template import OPTIONS, _translate
from tests.support.samcli import ROOT, ensure_sam_cli

CONFIG = ROOT / ".checkov.yaml"
REQUIREMENTS = ROOT / "scripts" / "requirements-checkov.txt"
CHECKOV_VENV = Path(os.environ.get("CHECKOV_VENV", ROOT / ".venv-checkov"))
# Every choice a user makes that changes what is deployed: each must pass (ApiAuth=NONE is checked on its own).
CLEAN = ["defaults", "jwt_auth", "api_key_auth", "everything_on", "no_reserved_concurrency"]


def _pin() -> str:
    (line,) = [x for x in REQUIREMENTS.read_text().splitlines() if x.startswith("checkov==")]
    return line.split("==")[1]


@pytest.fixture(scope="module")
def checkov() -> Path:
    """`checkov` at the pinned version, installing its venv as `make checkov` does when it is missing."""
    binary = CHECKOV_VENV / "bin" / "checkov"
    if binary.exists():
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, env=_env())
        if done.returncode == 0 and done.stdout.strip() == _pin():
            return binary
    if not (CHECKOV_VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(CHECKOV_VENV)], check=True)
    pip = [str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)]
    subprocess.run(pip, check=True)
    (CHECKOV_VENV / ".installed").touch()
    return binary


def _env() -> dict[str, str]:
    """No AWS account, and any HTTPS request refused at once (checkov needs none with --skip-download)."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {
        **{k: v for k, v in os.environ.items() if k in keep},
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1,localhost",
    }


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """SAM's transformed template for each choice, as files checkov reads."""
    ensure_sam_cli()
    folder = tmp_path_factory.mktemp("transformed")
    out = {}
    for name in [*CLEAN, "public_function_url"]:
        out[name] = folder / f"{name}.json"
        out[name].write_text(json.dumps(_translate(OPTIONS[name]), indent=1))
    return out


def _failed(checkov: Path, files: list[Path], config: bool) -> dict[str, set[str]]:
    """{file name: {check id: resource ...}} of the failed checks, with .checkov.yaml's skips or with none."""
    command = [str(checkov), "--framework", "cloudformation", "--skip-download", "-o", "json"]
    command += ["--config-file", str(CONFIG)] if config else []
    for path in files:
        command += ["-f", str(path)]
    # checkov also reads a .checkov.yaml in its working directory: without the config, it runs elsewhere.
    cwd = ROOT if config else files[0].parent
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=600)
    assert done.returncode in (0, 1), f"checkov did not run:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    reports: Any = json.loads(done.stdout)
    reports = reports if isinstance(reports, list) else [reports]
    if reports == [{}] or reports == []:
        pytest.fail(f"checkov read nothing:\n{done.stderr[-3000:]}")
    failed: dict[str, set[str]] = {Path(f).stem: set() for f in files}
    for report in reports:
        assert report.get("summary", {}).get("parsing_errors", 0) == 0, report.get("summary")
        for check in report["results"]["failed_checks"]:
            failed[Path(check["file_path"]).stem].add(f"{check['check_id']} {check['resource']}")
    return failed


def _skipped() -> dict[str, list[str]]:
    """.checkov.yaml's skip-check entries, each with the comment lines written right above it."""
    lines = CONFIG.read_text().splitlines()
    start = lines.index("skip-check:")
    out: dict[str, list[str]] = {}
    reason: list[str] = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if stripped.startswith("#"):
            reason.append(stripped.lstrip("# "))
        elif m := re.fullmatch(r"- (CKV2?_AWS_\d+)", stripped):
            assert m[1] not in out, f"{m[1]} is skipped twice"
            out[m[1]] = reason
            reason = []
        elif stripped:
            break  # the next key
    return out


def test_every_skipped_check_is_justified_in_one_place() -> None:
    skipped = _skipped()
    assert skipped, ".checkov.yaml skips nothing: then say so here"
    for check, reason in skipped.items():
        assert len(" ".join(reason)) >= 60, f"{check} is skipped without its reason written above it"
    # No skip anywhere else: an inline `checkov:skip=` in the template would hide one from this list.
    assert "checkov:skip" not in (ROOT / "template.yaml").read_text()
    makefile = (ROOT / "Makefile").read_text()
    assert "checkov --config-file .checkov.yaml -f .work/template.transformed.json" in makefile
    assert "translate_template.py template.yaml > .work/template.transformed.json" in makefile


def test_checkov_finds_nothing_on_the_transformed_template_whatever_the_choices(
    checkov: Path, transformed: dict[str, Path]
) -> None:
    failed = _failed(checkov, [transformed[name] for name in CLEAN], config=True)
    assert not any(failed.values()), "checkov's findings:\n" + json.dumps({k: sorted(v) for k, v in failed.items()})


def test_checkov_flags_the_open_function_url_of_api_auth_none(checkov: Path, transformed: dict[str, Path]) -> None:
    """The one open choice is the one checkov objects to (it reads no authorizer off the APIs' OpenAPI bodies, so
    the routes themselves are checked in test_secure_defaults)."""
    failed = _failed(checkov, [transformed["public_function_url"]], config=True)
    assert failed == {"public_function_url": {"CKV_AWS_258 AWS::Lambda::Url.FunctionUrl"}}, failed


def test_every_skipped_check_would_otherwise_fail(checkov: Path, transformed: dict[str, Path]) -> None:
    """A skip that no longer hides anything goes: the list stays what the template needs, no more."""
    failed = _failed(checkov, [transformed[name] for name in CLEAN], config=False)
    fired = {finding.split()[0] for findings in failed.values() for finding in findings}
    assert set(_skipped()) <= fired, f"skipped but never failing: {sorted(set(_skipped()) - fired)}"
    assert fired <= set(_skipped()), f"failing but not skipped: {sorted(fired - set(_skipped()))}"
