"""Benchmark: the executors on one machine — local 1 vs 2 workers, Ray vs local, and Ray's overhead.

The input is real code: the files of the local Python installation exported through the toolkit's
own reader into ``--shards`` .jsonl.gz files (the CodeParrot dump's format), repeated ``--copies``
times to reach a few hundred MB. Each run is its own process (its wall time, its own CPU and that
of its workers are its own); `stream` and then `dedup` run into a fresh RUN. The outputs of every
run are checked byte-identical. The machine may be shared: compare the ratios of one run.

    python benchmarks/bench_executors.py                       # ~300 MB, local 1/2 workers, ray 2
    python benchmarks/bench_executors.py --copies 1 --no-ray    # quicker
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.dedup.near import run_dedup
from preprocessing.executors import ExecutorConfig
from preprocessing.readers import InputConfig
from preprocessing.stream import StreamConfig, run_stream
ex = ExecutorConfig(executor={executor!r}, workers={workers})
t0 = time.perf_counter()
s = run_stream(StreamConfig(input=InputConfig(paths={paths!r})), {run!r}, executor=ex)
t1 = time.perf_counter()
d = run_dedup(NearDedupConfig(), {run!r}, ex)
t2 = time.perf_counter()
own = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({{"stream_s": t1 - t0, "dedup_s": t2 - t1, "driver_cpu_s": own.ru_utime + own.ru_stime,
                  "workers_cpu_s": kids.ru_utime + kids.ru_stime, "mb": s["totals"]["bytes_read"] / 1e6,
                  "records": s["totals"]["records_read"]}}))
"""


def export_dump(out_dir: Path, shards: int, copies: int) -> list[str]:
    """The Python installation as ``shards`` .jsonl.gz files (level 1), ``copies`` times over."""
    import orjson

    from preprocessing.readers import PythonEnvReader
    from preprocessing.record import CodeFile

    out_dir.mkdir(parents=True, exist_ok=True)
    reader = PythonEnvReader()
    lines = [orjson.dumps({"repo_name": r.repo_name, "path": r.path, "copies": "1", "size": str(r.extra["size"]),
                           "content": r.content, "license": r.license}) + b"\n"
             for r in reader.records() if isinstance(r, CodeFile)]
    paths = []
    for c in range(copies):
        for s in range(shards):
            p = out_dir / f"file-{c:02d}-{s:03d}.jsonl.gz"
            with gzip.open(p, "wb", compresslevel=1) as f:
                f.writelines(lines[s::shards])
            paths.append(str(p))
    return paths


def tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name != "stats.json":
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def run_child(paths: list[str], run: Path, executor: str, workers: int) -> dict:
    code = _CHILD.format(root=str(ROOT), paths=paths, run=str(run), executor=executor, workers=workers)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["digest"] = tree_digest(run / "clean") + "/" + tree_digest(run / "dedup")
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_dump(Path(tmp) / "dump", args.shards, args.copies)
        sides = [("local", 1), ("local", 2)] + ([] if args.no_ray else [("ray", 2)])
        rows = {}
        for executor, workers in sides:
            rows[(executor, workers)] = r = run_child(paths, Path(tmp) / f"{executor}{workers}", executor, workers)
            print(f"{executor:5s} workers={workers}: stream {r['stream_s']:6.1f} s, dedup {r['dedup_s']:6.1f} s, "
                  f"driver CPU {r['driver_cpu_s']:6.1f} s, workers CPU {r['workers_cpu_s']:6.1f} s "
                  f"({r['records']:,} files, {r['mb']:.0f} MB)", flush=True)
        base, two = rows[("local", 1)], rows[("local", 2)]
        print(f"local 2 vs 1 workers: stream x{base['stream_s'] / two['stream_s']:.2f}, "
              f"dedup x{base['dedup_s'] / two['dedup_s']:.2f}")
        if ("ray", 2) in rows:
            ray = rows[("ray", 2)]
            print(f"ray vs local, 2 workers: stream {ray['stream_s'] - two['stream_s']:+.1f} s, "
                  f"dedup {ray['dedup_s'] - two['dedup_s']:+.1f} s (Ray's start, object store, task overhead)")
        print("outputs byte-identical:", len({r["digest"] for r in rows.values()}) == 1)


if __name__ == "__main__":
    main()
