"""Benchmark: partitioned global state vs gathered in the driver (exact dedup, near-dedup's band buckets), same run.

The input is bench_executors.py's: the local Python installation exported through the toolkit's
reader into ``--shards`` .jsonl.gz files, ``--copies`` times over (so that with 2 copies half of
the files are exact duplicates). Each side is `stream` then `dedup` in its own process into a
fresh RUN, both with the side's executor and partitions; the outputs are checked byte-identical. Reported per side: wall
time, the driver's CPU and peak RSS (Ray's workers are not the driver's children: their CPU is
not counted), and for the partitioned sides what went to the partitions. The machine may be
shared: compare the ratios of one run.

    python benchmarks/bench_partitioned.py                    # local gathered / P=2, ray gathered / P=2
    python benchmarks/bench_partitioned.py --copies 1 --no-ray
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_executors import export_dump, run_program  # noqa: E402

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.executors import ExecutorConfig
from preprocessing.readers import InputConfig
from preprocessing.stages.dedup import run_dedup
from preprocessing.stages.stream import StreamConfig, run_stream

ex = ExecutorConfig(executor={executor!r}, workers={workers}, partitions={partitions})
out = {{}}
for name, fn in (("stream", lambda: run_stream(StreamConfig(input=InputConfig(paths={paths!r})), {run!r}, executor=ex)),
                 ("dedup", lambda: run_dedup(NearDedupConfig(), {run!r}, ex))):
    c0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    stats = fn()
    c1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    out[name] = {{"wall_s": t1 - t0, "driver_cpu_s": c1.ru_utime + c1.ru_stime - c0.ru_utime - c0.ru_stime,
                 "driver_rss_mb": c1.ru_maxrss / 1024}}
    if name == "stream":
        out.update(mb=stats["totals"]["bytes_read"] / 1e6, records=stats["totals"]["records_read"],
                   kept=stats["totals"]["kept"], duplicates=stats["totals"]["dropped"].get("exact_duplicate", 0))
    else:
        out["dedup"]["pairs"] = stats["near_dedup"]["candidate_pairs"]
        out["dedup"]["removed"] = stats["near_dedup"]["removed"]
print(json.dumps(out))
"""


def run_side(paths: list[str], run: Path, executor: str, workers: int, partitions: int) -> dict:
    return run_program(_CHILD.format(root=str(ROOT), paths=paths, run=str(run), executor=executor, workers=workers,
                                     partitions=partitions), run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--more", action="store_true", help="also local with 4 x workers partitions")
    args = ap.parse_args()
    w = args.workers
    sides = [("local", 0), ("local", w)] + ([("local", 4 * w)] if args.more else []) \
        + ([] if args.no_ray else [("ray", 0), ("ray", w)])
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_dump(Path(tmp) / "dump", args.shards, args.copies)
        rows = {}
        for executor, partitions in sides:
            r = run_side(paths, Path(tmp) / f"{executor}-p{partitions}", executor, w, partitions)
            rows[(executor, partitions)] = r
            label = "gathered" if partitions == 0 else f"P={partitions}"
            print(f"{executor:5s} {label:8s} workers={w} ({r['records']:,} files, {r['mb']:.0f} MB, "
                  f"{r['duplicates']:,} exact duplicates, {r['dedup']['removed']:,} near):", flush=True)
            for stage in ("stream", "dedup"):
                s = r[stage]
                print(f"    {stage:6s} {s['wall_s']:6.1f} s wall, driver CPU {s['driver_cpu_s']:6.1f} s, "
                      f"driver peak RSS {s['driver_rss_mb']:5.0f} MB", flush=True)
        for executor in ("local", "ray"):
            base = rows.get((executor, 0))
            for (ex, p), r in rows.items():
                if ex == executor and p and base:
                    print(f"{executor} P={p} vs gathered: " + ", ".join(
                        f"{st} wall x{r[st]['wall_s'] / base[st]['wall_s']:.2f} driver CPU "
                        f"x{r[st]['driver_cpu_s'] / max(base[st]['driver_cpu_s'], 1e-9):.2f}" for st in ("stream", "dedup")))
        first = next(iter(rows.values()))
        print(f"exact dedup, to the partitions: 16 B x <= {first['kept'] + first['duplicates']:,} rows; back: 8 B x "
              f"{first['duplicates']:,} duplicates; candidate pairs (near-dedup): {first['dedup']['pairs']:,}")
        print("outputs byte-identical:", len({r["digest"] for r in rows.values()}) == 1)


if __name__ == "__main__":
    main()
