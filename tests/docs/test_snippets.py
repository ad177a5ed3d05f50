"""Every fenced code block of README.md and docs/*.md runs as pasted, or says why it is not run (issue 21).

- ```python: a fresh process of the project's venv Python, in an empty temporary working directory (so a
  block must be self-contained). PYTHONPATH names this checkout: in a fresh clone `pip install -e` does that;
  here the venv may be another worktree's.
- ```bash / ```sh: one bash process per block, from the repository's root, commands in order as a terminal
  runs them; `curl` goes to one local server started here (`python -m handler serve` on a free port, which
  replaces 127.0.0.1:3000), `python -m handler verify|predict|invoke|drift|quality` runs. Each command must exit 0.
- A `# -> ...` answer is compared with what the command printed; a request that is a golden case of the
  model is also compared with training's answer in that model's golden.json, within its tolerance.
- A block marked `<!-- snippet: syntax-only -->` is checked by `bash -n` (its `make` targets must exist) or
  compile(); `<!-- snippet: output -->` is not code. An unmarked block this test cannot run fails it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from handler.core.golden import compare_outputs, outputs_of_v1
from tests.docs import snippets
from tests.docs.snippets import ROOT, Block

README_MAX_LINES = 250
# A copied tree (make mutation's) has no venv of its own: the Python running the tests is the project's.
VENV_PYTHON = ROOT / ".venv" / "bin" / "python" if (ROOT / ".venv").exists() else Path(sys.executable)
CLIENTS_PYTHON = ROOT / ".venv-clients" / "bin" / "python"
DEFAULT_MODEL = ROOT / "model_artifacts" / "churn"
DEMO_DIR = Path("/tmp/skewless-demo")  # where the README's export example writes its model
# What a fresh shell would not have: the settings (handler/settings.py), Powertools' and the tests' own.
CLEARED = re.compile(r"^(POWERTOOLS_|AWS_|MODEL_|SERVING_|DRIFT_|CAPTURE_|S3_|PYTHONPATH$)")
SETTINGS = {"MAX_BATCH_SIZE", "MAX_BODY_BYTES", "NUMERIC_STRINGS", "NON_FINITE", "UNKNOWN_FEATURES"}
SETTINGS |= {"OUTPUT_BUCKET", "OUTPUT_PREFIX", "INPUT_PREFIX", "RESULTS_QUEUE_URL", "RESULTS_S3_PREFIX"}
SETTINGS |= {"LOG_REQUEST_VALUES", "DIRECT_ERRORS", "PRELOAD_MODEL", "CUSTOM_OBJECT_MODULES", "PORT"}

ALL = [block for path in snippets.DOCS for block in snippets.blocks(path)]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not CLEARED.match(k) and k not in SETTINGS}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[int]:
    """`python -m handler serve` (the default model, churn) on a free port, for every curl of every block."""
    port = _free_port()
    log = (ROOT / ".work").joinpath("docs-server.log")
    log.parent.mkdir(exist_ok=True)
    with log.open("w") as out:
        proc = subprocess.Popen(
            [str(VENV_PYTHON), "-m", "handler", "serve", "--port", str(port)],
            cwd=ROOT,
            env=_env(),
            stdout=out,
            stderr=out,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/live", timeout=2) as answer:
                        assert answer.status == 200
                        break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        pytest.fail(f"the local server did not start:\n{log.read_text()[-3000:]}")
                    time.sleep(0.2)
            yield port
        finally:
            proc.terminate()
            proc.wait(timeout=30)


@pytest.fixture(scope="module", autouse=True)
def demo_dir() -> Iterator[None]:
    """The README's export example writes under /tmp/skewless-demo: removed after, if it was not there before."""
    existed = DEMO_DIR.exists()
    yield
    if not existed:
        shutil.rmtree(DEMO_DIR, ignore_errors=True)


def test_readme_is_short() -> None:
    lines = len((ROOT / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move detail into docs/"


@pytest.mark.parametrize("path", snippets.DOCS, ids=lambda p: p.name)
def test_links_resolve(path: Path) -> None:
    """Relative links name files of this repository; none sends the reader outside it."""
    text = path.read_text()
    assert "../shared" not in text
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(ROOT), f"{path.name}: {target} is outside the repository"
        assert resolved.exists(), f"{path.name}: {target} does not exist"


@pytest.mark.parametrize("path", snippets.DOCS, ids=lambda p: p.name)
def test_markers_sit_before_a_block(path: Path) -> None:
    assert not snippets.stray_markers(path), f"{path.name}: a snippet marker with no code block after it"


@pytest.mark.parametrize("block", ALL, ids=lambda b: b.where)
def test_block(block: Block, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """Each block is run, or checked as what its marker says; one that can be neither fails here."""
    kind = block.kind
    assert not kind.startswith("unrunnable"), f"{block.where}: {kind}"
    if kind == "python":
        _run_python(block, VENV_PYTHON, tmp_path, None)
    elif kind == "clients-venv":
        assert block.lang in snippets.PYTHONS, f"{block.where}: clients-venv marks a python block"
        assert CLIENTS_PYTHON.exists(), f"{block.where} runs with .venv-clients: `make clients` installs it"
        _run_python(block, CLIENTS_PYTHON, tmp_path, request.getfixturevalue("server"))
    elif kind == "shell":
        port = request.getfixturevalue("server") if snippets.LOCAL_URL.search(block.text) else None
        _run_shell(block, port)
    elif kind == "syntax-only":
        _check_syntax(block)
    else:
        assert kind == "output"
        if block.lang == "json":
            snippets.pattern(block.text.strip())  # parses, `...` aside


def _tolerance(model_dir: Path) -> tuple[float, float]:
    tol = json.loads((model_dir / "golden.json").read_text())["tolerance"]
    return float(tol["atol"]), float(tol["rtol"])


def _run_python(block: Block, python: Path, cwd: Path, port: int | None) -> None:
    text = block.text if port is None else snippets.LOCAL_URL.sub(f"127.0.0.1:{port}", block.text)
    (cwd / "snippet.py").write_text(text)
    done = subprocess.run([str(python), "snippet.py"], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{block.where} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    atol, rtol = _tolerance(DEFAULT_MODEL)
    lines = done.stdout.splitlines()
    for expected in snippets.python_expectations(block.text):
        while lines and not snippets.output_matches(expected, lines[0], atol, rtol):
            lines.pop(0)
        assert lines, f"{block.where}: no line of its output (in order) is `{expected}`:\n{done.stdout[-3000:]}"
        lines.pop(0)


def _run_shell(block: Block, port: int | None) -> None:
    """The block in one bash process, each command followed by a line with its exit status."""
    mark = "@@snippet-command-done"
    script = []
    for i, command in enumerate(block.commands):
        text = command.text if port is None else snippets.LOCAL_URL.sub(f"127.0.0.1:{port}", command.text)
        script += [text, f'printf "\\n{mark} {i} %s\\n" "$?"']
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300
    )
    outputs = re.split(rf"\n{mark} (\d+) (\d+)\n", "\n" + done.stdout)
    ran = {int(outputs[k]): (int(outputs[k + 1]), outputs[k - 1].strip()) for k in range(1, len(outputs) - 1, 3)}
    for i, command in enumerate(block.commands):
        where = f"{block.path.relative_to(ROOT)}:{command.line}"
        assert i in ran, f"{where}: the block stopped before this command:\n{done.stderr[-3000:]}"
        status, output = ran[i]
        assert status == 0, f"{where}: exit status {status}\n{output[-2000:]}\n{done.stderr[-3000:]}"
        _check_answer(command, output, where)


def _check_answer(command: snippets.Command, output: str, where: str) -> None:
    model_dir = ROOT / snippets.env_of(command.text).get("MODEL_DIR", str(DEFAULT_MODEL))
    atol, rtol = _tolerance(model_dir) if (model_dir / "golden.json").exists() else _tolerance(DEFAULT_MODEL)
    for expected in command.expected:
        assert snippets.output_matches(expected, output, atol, rtol), (
            f"{where}: the docs show `{expected}`, the command printed:\n{output[-2000:]}"
        )
    answer = snippets.parse_output(output)
    if not command.expected and isinstance(answer, dict):
        assert not {"error", "code"} <= set(answer), f"{where} answers an error the docs do not show:\n{output}"
    body = snippets.request_body(command.text)
    if body is not None and isinstance(answer, dict):
        _check_golden(body, answer, model_dir, where)


def _check_golden(body: Any, answer: dict[str, Any], model_dir: Path, where: str) -> None:
    """A request that is one of the model's golden cases gets training's answer, within the golden tolerance."""
    golden = json.loads((model_dir / "golden.json").read_text())
    names = [o["name"] for o in json.loads((model_dir / "manifest.json").read_text())["signature"]["outputs"]]
    for case in golden["cases"]:
        if case["request"] == body:
            actual = outputs_of_v1(answer, body, names, case["batched"])
            tol = golden["tolerance"]
            ok, diff, detail = compare_outputs(case["expected"], actual, tol["atol"], tol["rtol"])
            assert ok, f"{where}: golden case '{case['name']}' answered otherwise than training: {detail}"


def _check_syntax(block: Block) -> None:
    if block.lang in snippets.PYTHONS:
        compile(block.text, block.where, "exec")
        return
    assert block.lang in snippets.SHELLS, f"{block.where}: syntax-only applies to shell and python blocks"
    done = subprocess.run(["bash", "-n"], input=block.text, capture_output=True, text=True)
    assert done.returncode == 0, f"{block.where}: {done.stderr}"
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    for command in block.commands:
        for argv in snippets.words(command.text):
            if argv[0] == "make":
                named = [a for a in argv[1:] if not a.startswith("-") and "=" not in a]
                missing = [t for t in named if t not in targets]
                assert not missing, f"{block.where}: `make {' '.join(missing)}`: no such target in the Makefile"


def test_every_block_is_run_or_marked() -> None:
    """The docs hold code, and no block is skipped silently: each one is run, or marked with the reason."""
    kinds = [block.kind for block in ALL]
    assert ALL, "no code block found in README.md and docs/"
    assert not [k for k in kinds if k.startswith("unrunnable")]
    assert kinds.count("python") + kinds.count("shell") >= 5, "most examples should run, not only be shown"
