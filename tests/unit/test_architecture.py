"""The boundaries between the parts, checked by tools rather than by lists kept by hand.

import-linter's contracts (in ``pyproject.toml``) say who may import Textual,
Rich, click, the TUI and the command line. Two rules import-linter cannot
express are checked here with ``ast``: SQL text lives only in the three
storage modules, and the command line imports the TUI only inside a command's
body (so ``--help``, ``send`` and the headless mode start without Textual).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "monitor"
SQL_MODULES = {"store.py", "writer.py", "queries.py", "checks.py", "reader_pages.py", "bulk.py", "facets.py"}
SQL = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|PRAGMA|BEGIN|COMMIT|ROLLBACK|WITH|EXPLAIN)\b")


def _lint_imports(cwd: Path, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if tool is None:
        pytest.skip("import-linter is not installed")
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(pythonpath or cwd)}
    return subprocess.run([tool, "--no-cache"], cwd=cwd, capture_output=True, text=True, env=env, timeout=120)


def test_import_contracts_are_kept() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout


def test_a_core_module_importing_textual_breaks_a_contract(tmp_path: Path) -> None:
    """The contracts really bite: a copy of the package with one bad import fails the check."""
    shutil.copytree(PACKAGE, tmp_path / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "monitor" / "careless.py").write_text(
        '"""A core module that should not know Textual."""\n\nimport textual\n'
    )
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (tmp_path / ".importlinter").write_text(_ini(config))
    result = _lint_imports(tmp_path)
    assert result.returncode != 0
    assert "monitor.careless -> textual" in result.stdout


def _ini(config: dict[str, object]) -> str:
    lines = ["[importlinter]", f"root_package = {config['root_package']}", "include_external_packages = True", ""]
    contracts = config["contracts"]
    assert isinstance(contracts, list)
    for number, contract in enumerate(contracts):
        lines.append(f"[importlinter:contract:c{number}]")
        for key, value in contract.items():
            shown = "\n    ".join(["", *value]) if isinstance(value, list) else value
            lines.append(f"{key} = {shown}")
        lines.append("")
    return "\n".join(lines)


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if "__pycache__" not in path.parts)


def test_sql_lives_only_in_the_storage_modules() -> None:
    offenders = []
    for path in _modules():
        if path.parent == PACKAGE and path.name in SQL_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.match(node.value):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value.strip()[:60]!r}")
    assert offenders == []


def test_the_command_line_imports_the_tui_only_inside_commands() -> None:
    offenders = []
    for path in sorted((PACKAGE / "cli").glob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:  # module level only
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            offenders += [f"{path.name}:{node.lineno}: {name}" for name in names if name.startswith("monitor.tui")]
    assert offenders == []
