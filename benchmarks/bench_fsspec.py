"""Benchmark: the local fast path after fsspec URLs, and what a memory:// input and RUN cost.

1. `cp-preprocess stream` on the embedded default (the local Python installation), one worker,
   in a checkout from before the fsspec change (``--baseline DIR``, e.g. made with
   ``git archive 15a003a | tar -x -C DIR``) and in this one, alternating, each in its own process:
   CPU seconds (user + sys of the child) and wall time.
2. In this checkout, the same stream over a dump (the installation exported to .jsonl.zst files)
   read from a local directory into a local RUN, and from memory:// into memory://, in one process.

    python benchmarks/bench_fsspec.py --baseline /tmp/base --limit 6000 --repeat 2
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_MEMORY = r"""
import sys, time, resource, fsspec
from pathlib import Path
from preprocessing.readers import InputConfig
from preprocessing.stages.stream import StreamConfig, run_stream
dump, out = Path(sys.argv[1]), Path(sys.argv[2])
fs = fsspec.filesystem("memory")
for p in sorted(dump.iterdir()):
    fs.put_file(str(p), f"/bench-in/{p.name}")
def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
for name, inp, run in (("local", str(dump), out / "run"), ("memory", "memory://bench-in", "memory://bench-run"),
                       ("local", str(dump), out / "run2"), ("memory", "memory://bench-in", "memory://bench-run2")):
    c, t = cpu(), time.perf_counter()
    s = run_stream(StreamConfig(input=InputConfig(paths=[inp])), run)
    print(f"{name}\t{cpu() - c:.2f}\t{time.perf_counter() - t:.2f}\t{s['totals']['kept']}", flush=True)
"""


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_stream_cli(tree: Path, limit: int, out: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    c, t = _child_cpu(), time.perf_counter()
    subprocess.run([sys.executable, "-m", "preprocessing.cli", "stream", "--limit", str(limit), "-o", str(out),
                    "--workers", "1"], env=env, cwd=tree, check=True, capture_output=True)
    return _child_cpu() - c, time.perf_counter() - t


def export_dump(dump: Path, limit: int) -> None:
    """The first ``limit`` files of the installation as 4 .jsonl.zst files (raw CodeParrot schema)."""
    sys.path.insert(0, str(ROOT))
    import orjson
    import zstandard

    from preprocessing.readers import PythonEnvReader

    dump.mkdir(parents=True)
    rows = []
    for rec in PythonEnvReader([".py"], True, True).records():
        if hasattr(rec, "content"):
            rows.append({"repo_name": rec.repo_name, "path": rec.path, "content": rec.content,
                         "license": rec.license, "copies": "1", "size": str(len(rec.content))})
        if len(rows) >= limit:
            break
    per = -(-len(rows) // 4)
    for i in range(4):
        with open(dump / f"part-{i}.jsonl.zst", "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as w:
            for row in rows[i * per:(i + 1) * per]:
                w.write(orjson.dumps(row) + b"\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", type=Path, required=True, help="a checkout from before the change")
    ap.add_argument("--limit", type=int, default=6000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs: dict[str, list[tuple[float, float]]] = {"before": [], "after": []}
        for i in range(args.repeat):
            for name, tree in (("before", args.baseline), ("after", ROOT)):
                runs[name].append(run_stream_cli(tree, args.limit, tmp / f"{name}-{i}"))
        for name, vals in runs.items():
            print(f"stream embedded default, limit {args.limit}, {name}: CPU "
                  + " ".join(f"{c:.2f}" for c, _ in vals) + " s; wall " + " ".join(f"{w:.2f}" for _, w in vals) + " s")
        best = {n: min(c for c, _ in v) for n, v in runs.items()}
        print(f"CPU after/before (best of {args.repeat}): {best['after'] / best['before']:.3f}")
        export_dump(tmp / "dump", args.limit)
        out = subprocess.run([sys.executable, "-c", _MEMORY, str(tmp / "dump"), str(tmp / "m")], check=True,
                             capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout
        print("in one process: where\tCPU s\twall s\tkept")
        print(out, end="")


if __name__ == "__main__":
    main()
