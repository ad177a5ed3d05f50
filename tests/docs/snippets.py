"""The fenced code blocks of README.md and docs/*.md: found, sorted by what can be run, and their expected answers.

A block is run as a reader pastes it unless the line before its fence says otherwise:

    <!-- snippet: syntax-only -->   checked, not run: `bash -n` for shell, compile() for Python (deployment
                                    commands, `make`, anything that needs AWS, Docker or a long run)
    <!-- snippet: output -->        not code: a drawing, a log, the shape of an answer (```json must parse)
    <!-- snippet: clients-venv -->  Python run by .venv-clients' interpreter (tritonclient, the KServe SDK)

A marker may give its reason in parentheses: `<!-- snippet: syntax-only (run by tests/...) -->`.
An unmarked block must be one this module can run (`Block.kind` says why not, otherwise). In a shell block
`# -> EXPECTED` after a command, and in a Python block `# -> EXPECTED` at the end of a line, is what the
command prints: JSON compared value by value (numbers within the golden tolerance), or text; `...` stands
for anything (a value, the rest of an object or list, part of a line).
"""

from __future__ import annotations

import ast
import json
import math
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
MARKERS = ("syntax-only", "output", "clients-venv")
SHELLS = ("bash", "sh", "shell")
PYTHONS = ("python", "py")
# Programs a runnable shell command may call; python only as `-m handler ...` (not serve), `-m json.tool` or `-c`.
PROGRAMS = {"curl", "echo", "printf", "gzip", "gunzip", "cat", "head", "tail", "od", "base64", "wc", "grep", "sort"}
PYTHON_PROGRAMS = {"python", "python3", ".venv/bin/python"}
HANDLER_COMMANDS = {"verify", "predict", "invoke", "drift", "quality"}
LOCAL_URL = re.compile(r"(127\.0\.0\.1|localhost):3000\b")

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<kind>[\w-]+)(\s*\([^)]*\))?\s*-->\s*$")


@dataclass
class Command:
    """One shell command (continuation lines joined) and what the docs say it prints."""

    text: str
    line: int
    expected: list[str] = field(default_factory=list)


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    marker: str | None
    commands: list[Command] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def kind(self) -> str:
        """'python', 'shell', 'syntax-only', 'output', 'clients-venv', or 'unrunnable: why'."""
        if self.marker is not None:
            return self.marker
        if self.lang in PYTHONS:
            return "python"
        if self.lang not in SHELLS:
            return f"unrunnable: a ```{self.lang or '(no language)'} block"
        for command in self.commands:
            why = unrunnable(command.text)
            if why:
                return f"unrunnable: line {command.line}: {why}"
        return "shell"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of a markdown file, with the marker on the line before its fence."""
    lines = path.read_text().splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == m["fence"]), None)
        if end is None:
            raise ValueError(f"{path.name}:{i + 1}: a fence that never closes")
        indent = len(m["indent"])
        body = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(before)
        kind = marker["kind"] if marker else None
        if kind is not None and kind not in MARKERS:
            raise ValueError(f"{path.name}:{i + 1}: unknown snippet marker {kind!r} (known: {', '.join(MARKERS)})")
        block = Block(path, i + 1, m["lang"].lower(), body, kind)
        if block.lang in SHELLS:
            block.commands = shell_commands(body, i + 2)
        found.append(block)
        i = end + 1
    return found


def stray_markers(path: Path) -> list[int]:
    """Lines holding a marker that no fence follows (a marker must sit right before its block)."""
    lines = path.read_text().splitlines()
    stray = []
    for i, line in enumerate(lines):
        if _MARKER.match(line):
            after = next((lines[j] for j in range(i + 1, len(lines)) if lines[j].strip()), "")
            if not _FENCE.match(after):
                stray.append(i + 1)
    return stray


def shell_commands(text: str, first_line: int) -> list[Command]:
    """The commands of a shell block, each with the `# -> ...` line that follows it."""
    commands: list[Command] = []
    pending = ""
    start = first_line
    for n, raw in enumerate(text.splitlines(), start=first_line):
        stripped = raw.strip()
        if not pending and stripped.startswith("# ->") and commands:
            commands[-1].expected.append(stripped[len("# ->") :].strip())
            continue
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if not pending:
            start = n
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1] + " "
            continue
        commands.append(Command(pending + raw, start))
        pending = ""
    return commands


def words(command: str) -> list[list[str]]:
    """A command's simple commands (split at |, &&, ||, ;), each as words without leading VAR=value."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    parts: list[list[str]] = [[]]
    redirect = False
    for token in lexer:
        if redirect:  # the file or descriptor a redirection names
            redirect = False
        elif token in ("<(", "$(") or (token and set(token) <= set(";&|()")):
            parts.append([])  # a separator, or a command substituted into this one
        elif token and set(token) <= set("<>&"):
            redirect = True  # `>`, `2>&1`'s `>&`: what follows is not a word of the command
            if parts[-1] and parts[-1][-1].isdigit():
                parts[-1].pop()
        elif not parts[-1] and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", token):
            continue  # an environment assignment before the program
        else:
            parts[-1].append(token)
    return [p for p in parts if p]


def unrunnable(command: str) -> str | None:
    """Why the test cannot run this command as pasted, or None."""
    for argv in words(command):
        program = argv[0]
        if program in PROGRAMS:
            continue
        if program in PYTHON_PROGRAMS:
            if argv[1:3] == ["-m", "json.tool"] or argv[1:2] == ["-c"]:
                continue
            if argv[1:3] == ["-m", "handler"] and len(argv) > 3 and argv[3] in HANDLER_COMMANDS:
                continue
            return f"`{' '.join(argv[:4])}` is not a python command this test runs (mark the block syntax-only)"
        return f"`{program}` is not run by this test (mark the block syntax-only, or leave it out)"
    return None


def env_of(command: str) -> dict[str, str]:
    """The VAR=value assignments before a command's first program."""
    assigned = {}
    for token in shlex.split(command, comments=True):
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)=(.*)", token)
        if not m:
            break
        assigned[m[1]] = m[2]
    return assigned


def request_body(command: str) -> Any:
    """The JSON body a `curl -d` (to a predict route) or `python -m handler predict` command sends, or None."""
    for argv in words(command):
        body = None
        if argv[0] == "curl" and any(":predict" in a or a.endswith("/predict") for a in argv):
            flags = ("-d", "--data", "--data-raw", "--data-binary")
            body = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a in flags), None)
        elif argv[0] in PYTHON_PROGRAMS and argv[1:4] == ["-m", "handler", "predict"] and len(argv) > 4:
            body = argv[4]
        if body is not None and not body.startswith("@"):
            try:
                return json.loads(body)
            except json.JSONDecodeError:
                return None
    return None


def python_expectations(text: str) -> list[str]:
    """The `# -> ...` comments of a Python block, in order."""
    found = []
    for line in text.splitlines():
        at = line.find("# ->")
        if at >= 0:
            found.append(line[at + len("# ->") :].strip())
    return found


# --- expected answers ------------------------------------------------------------------------------

ANY = "\u2026any"  # a value (or, as a key, the rest of an object; as a last item, the rest of a list)


def pattern(text: str) -> Any:
    """An expected answer: JSON (with `...` wildcards) as a value, or a text pattern as a compiled regex."""
    if not text.startswith(("{", "[")):
        return glob(text)
    marked = re.sub(r"\{\s*\.\.\.\s*\}|\[\s*\.\.\.\s*\]", f'"{ANY}"', text)
    marked = re.sub(r",\s*\.\.\.\s*}", f', "{ANY}": null}}', marked)
    marked = re.sub(r",\s*\.\.\.\s*]", f', "{ANY}"]', marked)
    marked = re.sub(r"(?<![\"\w])\.\.\.(?![\"\w])", f'"{ANY}"', marked)
    return json.loads(marked)


def glob(text: str) -> re.Pattern[str]:
    """A line of text in which `...` stands for anything."""
    return re.compile(r"\s*" + ".*".join(re.escape(p) for p in text.split("...")) + r"\s*", re.S)


def parse_output(text: str) -> Any:
    """Printed output as a value: JSON, else a Python literal (what print() of a dict shows), else None."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def matches(expected: Any, actual: Any, atol: float, rtol: float) -> bool:
    """Whether `actual` has the shape and values `expected` shows (numbers within atol + rtol * |expected|)."""
    if expected == ANY:
        return True
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return False
        keys = [k for k in expected if k != ANY]
        if ANY not in expected and sorted(keys) != sorted(actual):
            return False
        return all(k in actual and matches(expected[k], actual[k], atol, rtol) for k in keys)
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return False
        items = expected[:-1] if expected and expected[-1] == ANY else expected
        if len(actual) < len(items) or (items is expected and len(actual) != len(items)):
            return False
        return all(matches(e, a, atol, rtol) for e, a in zip(items, actual, strict=False))
    if isinstance(expected, str) and "..." in expected:
        return isinstance(actual, str) and bool(glob(expected).fullmatch(actual))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return math.isfinite(actual) and abs(actual - expected) <= atol + rtol * abs(expected)
    return bool(expected == actual)


def documents(output: str) -> list[Any]:
    """The values printed: the whole output, each line, and each JSON document that starts a line."""
    found = [parse_output(output)] + [parse_output(line) for line in output.splitlines() if line.strip()]
    decoder = json.JSONDecoder()
    for m in re.finditer(r"^[\[{]", output, re.M):
        try:
            found.append(decoder.raw_decode(output, m.start())[0])
        except json.JSONDecodeError:
            continue
    return [d for d in found if d is not None]


def output_matches(expected_text: str, output: str, atol: float, rtol: float) -> bool:
    """Some line of a command's output, or a value it printed, is what the docs show."""
    want = pattern(expected_text)
    if isinstance(want, re.Pattern):
        return any(want.fullmatch(line) for line in output.splitlines())
    return any(matches(want, doc, atol, rtol) for doc in documents(output))
