"""Shared fixtures: small real corpora from the local Python installation, written as dumps."""

from __future__ import annotations

import gzip
import json
import sysconfig
from pathlib import Path

import pytest
import zstandard

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def stdlib_rows(n: int, start: int = 0) -> list[dict]:
    """The first ``n`` real .py files of the standard library as raw CodeParrot dump rows."""
    files = sorted(p for p in STDLIB.glob("*.py"))[start:start + n]
    rows = []
    for p in files:
        content = p.read_text(encoding="utf-8")
        rows.append({"repo_name": "python/cpython", "path": f"Lib/{p.name}", "copies": "1",
                     "size": str(len(content.encode())), "content": content, "license": "psf-2.0"})
    return rows


def write_jsonl(path: Path, rows: list[dict], raw_lines: list[bytes] = ()) -> Path:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in rows) + b"".join(raw_lines)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    elif path.name.endswith(".zst"):
        path.write_bytes(zstandard.ZstdCompressor().compress(data))
    else:
        path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine two threads wait on each other (measured 10x slower)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def dump_dir(tmp_path: Path) -> Path:
    """Three real dump files (plain, .gz, .zst) of standard library modules."""
    d = tmp_path / "dump"
    d.mkdir()
    write_jsonl(d / "a.jsonl", stdlib_rows(20, 0))
    write_jsonl(d / "b.jsonl.gz", stdlib_rows(20, 20))
    write_jsonl(d / "c.jsonl.zst", stdlib_rows(20, 40))
    return d
