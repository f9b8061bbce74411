"""The package boundaries the design fixes, checked on the source: training/, shards/, common/ and
evaluation/ import nothing of preprocessing/; no filter imports the shard format or a stage."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def offending(package: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for mod in sorted(imported_modules(path)):
            if any(mod == f or mod.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(ROOT)} imports {mod}")
    return bad


@pytest.mark.parametrize("package", ["training", "shards", "common", "evaluation"])
def test_only_contracts_are_shared_with_preprocessing(package):
    assert offending(package, ("preprocessing",)) == []


def test_filters_import_no_shard_format_and_no_stage():
    assert offending("preprocessing/filters", ("shards", "preprocessing.stages", "preprocessing.cli", "training")) == []


def test_the_checker_sees_function_level_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from preprocessing.stages.pack import PackConfig\n    import shards.format\n")
    assert {"preprocessing.stages.pack", "preprocessing.stages.pack.PackConfig", "shards.format"} <= imported_modules(f)


def test_only_the_cli_package_imports_click():
    bad = [b for b in offending("preprocessing", ("click",)) if not b.startswith("preprocessing/cli/")]
    assert bad == []
