"""docs/bulk.md's faults table names the tests that show each fault loses and doubles nothing: every test it
names must exist, so the table cannot promise what no test checks."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _table() -> list[str]:
    text = (ROOT / "docs" / "bulk.md").read_text()
    section = text.split("## Faults, and the tests that show nothing lost", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| fault")]


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_test_the_faults_table_names_exists() -> None:
    rows = _table()
    assert len(rows) >= 15, f"the faults table has {len(rows)} rows"
    named = 0
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 3 and all(cells), row
        refs = re.findall(r"`([^`]+)`", cells[2])
        assert refs, f"a fault without its test: {row}"
        current: Path | None = None
        for ref in refs:
            file, _, name = ref.partition("::")
            if file:
                found = [ROOT / file] if file.startswith("tests/") else sorted(ROOT.glob(f"tests/**/{file}"))
                assert len(found) == 1 and found[0].is_file(), f"{ref}: no such test file"
                current = found[0]
            assert current is not None, ref
            if name:
                assert name in _tests_in(current), f"{ref}: no such test in {current.relative_to(ROOT)}"
            named += 1
    assert named >= 20
