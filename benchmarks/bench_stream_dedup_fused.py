"""`stream --near-dedup` fused into one pass, against `stream` followed by `dedup` (the baseline).

Both read the embedded default (this Python installation) with the same config and worker
count; each runs in a fresh process so its wall and CPU time (user + system, the process and its
workers) are its own. The script checks that RUN/clean and RUN/dedup are byte-identical and
prints the ratios.

    python benchmarks/bench_stream_dedup_fused.py                 # 3000 files, 1 worker, 2 rounds, ~30 s
    python benchmarks/bench_stream_dedup_fused.py --limit 0       # the whole installation
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.readers import InputConfig
from preprocessing.stages.dedup import run_dedup
from preprocessing.stages.stream import StreamConfig, run_stream, run_stream_and_dedup
t0 = time.perf_counter()
cfg = StreamConfig(input=InputConfig(limit={limit}))
if {fused}:
    out = run_stream_and_dedup(cfg, NearDedupConfig(), {run!r}, executor={workers})
else:
    out = {{"stream": run_stream(cfg, {run!r}, executor={workers}),
            "dedup": run_dedup(NearDedupConfig(), {run!r}, executor={workers})}}
wall = time.perf_counter() - t0
ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
cpu = sum(r.ru_utime + r.ru_stime for r in ru)
print(json.dumps({{"wall": wall, "cpu": cpu, "stream_s": out["stream"]["wall_time_s"],
                   "dedup_s": out["dedup"]["wall_time_s"], "records": out["stream"]["totals"]["records_read"],
                   "removed": out["dedup"]["near_dedup"]["removed"]}}))
"""


def run_child(run: Path, limit: int | None, workers: int, fused: bool) -> dict:
    code = _CHILD.format(root=str(ROOT), limit=limit, workers=workers, fused=fused, run=str(run))
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def files_of(run: Path) -> dict[str, bytes]:
    return {f"{p.parent.name}/{p.name}": p.read_bytes() for d in ("clean", "dedup") for p in sorted((run / d).glob("*.jsonl.zst"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=3000, help="input files (0: the whole installation)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=2, help="runs of each method (alternating order); best kept")
    args = ap.parse_args()
    limit = args.limit or None
    runs: dict[bool, list[dict]] = {False: [], True: []}
    same = True
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            # alternate the order so that neither method always finds the input in the page cache
            for fused in ((False, True) if r % 2 == 0 else (True, False)):
                runs[fused].append(run_child(Path(tmp) / str(fused), limit, args.workers, fused))
            same = same and files_of(Path(tmp) / "False") == files_of(Path(tmp) / "True")
    sep, fused = (min(runs[f], key=lambda x: x["wall"]) for f in (False, True))  # best of the rounds
    print(f"input: {sep['records']:,} files (limit {limit}), {args.workers} worker(s), best of {args.rounds}; "
          f"near-duplicates removed: {sep['removed']} / {fused['removed']}; outputs byte-identical: {same}")
    print(f"{'method':<22} {'wall s':>7} {'cpu s':>7}  (stage wall s)")
    print(f"{'stream, then dedup':<22} {sep['wall']:7.2f} {sep['cpu']:7.2f}  (stream {sep['stream_s']:.2f} + dedup {sep['dedup_s']:.2f})")
    print(f"{'stream --near-dedup':<22} {fused['wall']:7.2f} {fused['cpu']:7.2f}  (stream+sketch {fused['stream_s']:.2f}, "
          f"dedup total {fused['dedup_s']:.2f})")
    print(f"fused / separate: wall {fused['wall'] / sep['wall']:.2f}x, cpu {fused['cpu'] / sep['cpu']:.2f}x")
    if not same:
        sys.exit("outputs differ")


if __name__ == "__main__":
    main()
