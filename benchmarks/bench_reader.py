"""Benchmark: the JSONL reader's main-process part (frame walk, decompression, line splitting into
work units) in MB/s of JSON, before and after a change, on two real dumps of the same rows:

- a single-frame .jsonl.zst written by the `zstd` CLI (`zstd -3`, one frame of the whole file, as
  other tools write dumps, with a checksum),
- the same written by python-zstandard's `stream_writer` (level 3, no checksum, no content size), and
- the toolkit's own RUN/clean layout (ShardedJsonlWriter: zstd level 3, frames of 256 KiB of whole lines).

The rows are real files of the local Python installation, read through the toolkit's PythonEnvReader
(repeated, under other repository names, until the dump reaches --mb). "Before" is another checkout
of the package, or a git revision of this repository (default: 9d839e0, the last commit before the
issue-11 reader fix) exported with `git archive`, imported in its own process with PYTHONPATH; each side runs in
its own process, alternately; the best CPU time (and wall time) of --rounds x --reads is kept: on a
loaded machine CPU time is the steadier measure.

    python benchmarks/bench_reader.py                          # ~150 MB, 5 rounds x 3 reads (~2 min)
    python benchmarks/bench_reader.py --before /path/to/old/checkout --mb 50   # or --before GIT_REV
    python benchmarks/bench_reader.py --callgrind --mb 60      # + instructions (valgrind), noise-free (~5 min)

With --callgrind each side also reads each input once under valgrind's callgrind, and the
instructions of an import-only run are subtracted: a count that a loaded machine does not change.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in a fresh process whose PYTHONPATH names the checkout under test (cwd is neutral, so the
# checkout this script lives in is not imported by accident).
MEASURE = r"""
import json, sys, time
import preprocessing
from preprocessing.readers import JsonlReader
best = {"cpu": float("inf"), "wall": float("inf")}
for _ in range(int(sys.argv[2])):
    reader = JsonlReader(sys.argv[1])
    t0, c0 = time.perf_counter(), time.process_time()
    lines = units = 0
    for unit in reader.units():
        lines += len(unit.lines)
        units += 1
    best["cpu"] = min(best["cpu"], time.process_time() - c0)
    best["wall"] = min(best["wall"], time.perf_counter() - t0)
print(json.dumps({**best, "lines": lines, "units": units, "warnings": reader.warnings, "package": preprocessing.__file__}))
"""


def export_rows(path: Path, mb: float) -> tuple[int, int]:
    """At least ``mb`` MB of raw CodeParrot-schema JSON lines from the local Python installation."""
    import orjson

    from preprocessing.readers import PythonEnvReader
    from preprocessing.record import CodeFile

    rows = nbytes = 0
    copy = 0
    with open(path, "wb") as f:
        while nbytes < mb * 1e6:
            reader = PythonEnvReader()
            for rec in reader.records():
                if not isinstance(rec, CodeFile):
                    continue
                repo = rec.repo_name if copy == 0 else f"copy{copy}/{rec.repo_name}"
                line = orjson.dumps({"repo_name": repo, "path": rec.path, "copies": "1", "size": str(rec.extra["size"]),
                                     "content": rec.content, "license": rec.license}) + b"\n"
                f.write(line)
                rows += 1
                nbytes += len(line)
                if nbytes >= mb * 1e6:
                    break
            copy += 1
    return rows, nbytes


def build_inputs(work: Path, mb: float) -> tuple[dict[str, Path], int, int]:
    sys.path.insert(0, str(ROOT))
    from preprocessing.writers import ShardedJsonlWriter

    dump = work / "dump.jsonl"
    rows, nbytes = export_rows(dump, mb)
    single = work / "single.jsonl.zst"
    zstd = shutil.which("zstd")
    if zstd is None:
        sys.exit("the zstd CLI is needed (Debian package zstd)")
    subprocess.run([zstd, "-3", "-q", "-f", "-o", str(single), str(dump)], check=True)
    import zstandard

    writer = work / "stream_writer.jsonl.zst"  # python-zstandard's defaults: no checksum, size unknown
    with open(dump, "rb") as src, open(writer, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as w:
        shutil.copyfileobj(src, w, 1 << 20)
    with ShardedJsonlWriter(work / "clean", "part", max_bytes=1 << 40) as w, open(dump, "rb") as f:
        for line in f:
            w.write_line(line)
    dump.unlink()
    inputs = {"zstd CLI, one frame": single, "python-zstandard stream_writer, one frame": writer,
              "RUN/clean (256 KiB frames)": w.paths[0]}
    return inputs, rows, nbytes


def instructions(checkout: Path, path: Path | None) -> int:
    """Instructions (valgrind callgrind) of reading ``path`` once (None: the imports alone)."""
    code = MEASURE if path is not None else "import preprocessing.readers"
    env = {**os.environ, "PYTHONPATH": str(checkout), "OPENBLAS_NUM_THREADS": "1"}
    done = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, "-c", code,
                           str(path), "1"], env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, check=True)
    return int(done.stderr.split("Collected : ")[1].split()[0])


def measure(checkout: Path, path: Path, reads: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout), "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path), str(reads)], env=env, cwd=tempfile.gettempdir(),
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--before", default="9d839e0", help="checkout of the package, or git revision, to compare with")
    ap.add_argument("--mb", type=float, default=150, help="MB of JSON per dump")
    ap.add_argument("--rounds", type=int, default=5, help="processes per side and input, alternating")
    ap.add_argument("--reads", type=int, default=3, help="reads of the input per process")
    ap.add_argument("--callgrind", action="store_true", help="also count instructions with valgrind (slow)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_reader_") as tmp:
        before = Path(args.before)
        if not before.is_dir():  # a git revision: its package, exported
            before = Path(tmp) / "before"
            before.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "preprocessing"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
        sides = {"before": before.resolve(), "after": ROOT}
        inputs, rows, nbytes = build_inputs(Path(tmp), args.mb)
        print(f"{rows:,} rows, {nbytes / 1e6:.1f} MB of JSON per dump; "
              + ", ".join(f"{k}: {p.stat().st_size / 1e6:.1f} MB" for k, p in inputs.items()))
        results = {}
        for name, path in inputs.items():
            best: dict[str, dict] = {}
            for _ in range(args.rounds):
                for side, checkout in sides.items():
                    r = measure(checkout, path, args.reads)
                    if side in best:
                        r["cpu"], r["wall"] = min(r["cpu"], best[side]["cpu"]), min(r["wall"], best[side]["wall"])
                    best[side] = r
            results[name] = best
        counts: dict[str, dict[str, int]] = {}
        if args.callgrind:
            base = {side: instructions(checkout, None) for side, checkout in sides.items()}
            for name, path in inputs.items():
                counts[name] = {side: instructions(checkout, path) - base[side] for side, checkout in sides.items()}
        print("\n| input | before MB/s (CPU) | after MB/s (CPU) | after/before (CPU) | after/before (wall) "
              "| lines before / after | warnings before / after |")
        print("|---|---|---|---|---|---|---|")
        for name, best in results.items():
            b, a = best["before"], best["after"]
            print(f"| {name} | {nbytes / 1e6 / b['cpu']:.0f} | {nbytes / 1e6 / a['cpu']:.0f} | {b['cpu'] / a['cpu']:.3f} "
                  f"| {b['wall'] / a['wall']:.3f} | {b['lines']:,} / {a['lines']:,} | {len(b['warnings'])} / {len(a['warnings'])} |")
            for w in b["warnings"][:1] + a["warnings"][:1]:
                print(f"  warning: {w[:200]}")
        if counts:
            print("\n| input | instructions before | after | after/before |\n|---|---|---|---|")
            for name, c in counts.items():
                print(f"| {name} | {c['before'] / 1e6:,.0f} M | {c['after'] / 1e6:,.0f} M | {c['after'] / c['before']:.3f} |")


if __name__ == "__main__":
    main()
