"""Small real-code inputs for the tokenizer and pack tests: the local Python standard library as a .jsonl.zst dump."""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import zstandard


def stdlib_files(max_files: int = 300, max_file_bytes: int = 60_000) -> list[tuple[str, str, str]]:
    """(repo_name, path, content) of real stdlib modules, in a fixed order; one repo per top-level module/package."""
    root = Path(sysconfig.get_paths()["stdlib"])
    rows = []
    for p in sorted(root.rglob("*.py")):
        rel = p.relative_to(root)
        if rel.parts[0] in ("site-packages", "test", "idlelib", "lib2to3") or "tests" in rel.parts:
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if not text or len(text.encode()) > max_file_bytes:
            continue
        rows.append((f"python/{rel.parts[0].removesuffix('.py')}", str(rel), text))
        if len(rows) >= max_files:
            break
    return rows


def write_jsonl_zst(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` as one zstd-compressed JSON line each (the format of RUN/dedup)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh, zstandard.ZstdCompressor(level=3).stream_writer(fh) as out:
        for row in rows:
            out.write((json.dumps(row) + "\n").encode("utf-8"))
    return path


def write_corpus(directory: Path, max_files: int = 300, parts: int = 2) -> list[dict]:
    """A RUN/dedup-like directory: part-0000N.jsonl.zst files of real stdlib code. Returns the rows in order."""
    rows = [
        {"repo_name": repo, "path": path, "copies": "1", "size": str(len(text)), "content": text, "license": "psf"}
        for repo, path, text in stdlib_files(max_files)
    ]
    per = -(-len(rows) // parts)
    for i in range(parts):
        write_jsonl_zst(directory / f"part-{i:05d}.jsonl.zst", rows[i * per : (i + 1) * per])
    return rows
