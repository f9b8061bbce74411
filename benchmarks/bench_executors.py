"""Benchmark: the executors on one machine — local 1 vs 2 workers, Ray vs local, and Ray's overhead.

The input is real code: the files of the local Python installation exported through the toolkit's
own reader into ``--shards`` .jsonl.gz files (the CodeParrot dump's format), repeated ``--copies``
times to reach a few hundred MB. Each run is its own process (its wall time, its own CPU and that
of its workers are its own); `stream` and then `dedup` run into a fresh RUN. The outputs of every
run are checked byte-identical. The machine may be shared: compare the ratios of one run. Each run
also reports the hypervisor's steal (``/proc/stat``: the share of the machine's CPU time the VM was
runnable but not run); a ratio measured under heavy steal says little.

    python benchmarks/bench_executors.py                       # ~640 MB, local 1/2 workers, ray 2
    python benchmarks/bench_executors.py --copies 1 --no-ray    # quicker
    python benchmarks/bench_executors.py --code ../main         # + a checkout whose driver decompresses
    python benchmarks/bench_executors.py --dedup-input BIG.jsonl.zst --code BASE --repeat 2   # `dedup -i` only
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
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
from preprocessing.readers import InputConfig
from preprocessing.stages.dedup import run_dedup
from preprocessing.stages.stream import StreamConfig, run_stream

def cpu():
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime

inputs = InputConfig(paths={paths!r})
try:
    from preprocessing.executors import ExecutorConfig
    ex = ExecutorConfig(executor={executor!r}, workers={workers})
    stream = lambda: run_stream(StreamConfig(input=inputs), {run!r}, executor=ex)
    dedup = lambda: run_dedup(NearDedupConfig(), {run!r}, ex)
except ImportError:  # a checkout from before the executors (--code): workers only
    stream = lambda: run_stream(StreamConfig(input=inputs, workers={workers}), {run!r})
    dedup = lambda: run_dedup(NearDedupConfig(), {run!r}, workers={workers})
out = {{}}
for name, fn in (("stream", stream), ("dedup", dedup)):
    c0, t0 = cpu(), time.perf_counter()
    stats = fn()
    c1, t1 = cpu(), time.perf_counter()
    out[name] = {{"wall_s": t1 - t0, "driver_cpu_s": c1[0] - c0[0], "workers_cpu_s": c1[1] - c0[1]}}
    if name == "stream":
        out["mb"], out["records"] = stats["totals"]["bytes_read"] / 1e6, stats["totals"]["records_read"]
print(json.dumps(out))
"""


_DEDUP_INPUT = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.readers import InputConfig
from preprocessing.stages.dedup import run_near_dedup

def cpu():
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime

c0, t0 = cpu(), time.perf_counter()
stats = run_near_dedup(NearDedupConfig(), InputConfig(paths={paths!r}), {out!r}, executor={workers})
c1, t1 = cpu(), time.perf_counter()
print(json.dumps({{"dedup": {{"wall_s": t1 - t0, "driver_cpu_s": c1[0] - c0[0], "workers_cpu_s": c1[1] - c0[1],
                             "pass1_s": stats["pass1_s"], "pass2_s": stats["pass2_s"]}},
                  "mb": stats["totals"]["bytes_read"] / 1e6, "records": stats["totals"]["records_read"]}}))
"""


# as `cp-preprocess` sets it before numpy is imported (preprocessing/cli/common.py): the runs call the
# library, not the CLI, and would otherwise start OpenBLAS's threads in every process
_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS", "1")}


def cpu_ticks() -> tuple[int, int]:
    """(steal, all) CPU ticks of the machine so far, from /proc/stat ((0, 0) where there is none)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    return (fields[7] if len(fields) > 7 else 0), sum(fields[:8])


def steal_share(t0: tuple[int, int], t1: tuple[int, int]) -> float:
    """The share of the machine's CPU time stolen between two :func:`cpu_ticks`."""
    return (t1[0] - t0[0]) / max(t1[1] - t0[1], 1)


def dedup_input_runs(code_roots: list[tuple[str, Path]], paths: list[str], tmp: Path, repeat: int) -> None:
    """`dedup -i` of a dump other tools wrote (e.g. one zstd frame: the driver must read it), 1 vs
    2 workers per checkout, alternating, the fastest wall of ``repeat``; outputs checked identical."""
    best: dict[tuple[str, int], dict] = {}
    digests: dict[str, set] = {}
    for _ in range(repeat):
        for name, root in code_roots:
            for workers in (1, 2):
                out = tmp / f"dedup-{name}-{workers}"
                code = _DEDUP_INPUT.format(root=str(root), paths=paths, out=str(out), workers=workers)
                ticks = cpu_ticks()
                proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_ENV)
                r = json.loads(proc.stdout.strip().splitlines()[-1])
                r["steal"] = steal_share(ticks, cpu_ticks())
                digests.setdefault(name, set()).add(tree_digest(out))
                digests.setdefault("plain", set()).add(tree_digest(out, True))
                if (name, workers) not in best or r["dedup"]["wall_s"] < best[name, workers]["dedup"]["wall_s"]:
                    best[name, workers] = r
                subprocess.run(["rm", "-rf", str(out)], check=True)
    for name, _root in code_roots:
        one, two = best[name, 1], best[name, 2]
        for workers, r in ((1, one), (2, two)):
            s = r["dedup"]
            share = s["driver_cpu_s"] / max(s["driver_cpu_s"] + s["workers_cpu_s"], 1e-9)
            print(f"{name:8s} dedup -i ({r['records']:,} files, {r['mb']:.0f} MB) workers={workers}: {s['wall_s']:6.1f} s "
                  f"wall (pass 1 {s['pass1_s']:.1f}, pass 2 {s['pass2_s']:.1f}), driver CPU {s['driver_cpu_s']:.1f} s, "
                  f"workers CPU {s['workers_cpu_s']:.1f} s (driver's share {share:.0%}); steal {r['steal']:.0%}", flush=True)
        print(f"{name}: dedup -i 2 vs 1 workers x{one['dedup']['wall_s'] / two['dedup']['wall_s']:.2f}; "
              f"outputs byte-identical: {len(digests[name]) == 1}")
    print("dedup -i: uncompressed outputs identical across checkouts:", len(digests["plain"]) == 1)


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


def tree_digest(path: Path, plain: bool = False) -> str:
    """The files' names and bytes (``plain``: the .zst files decompressed: another checkout may cut
    other frames)."""
    import zstandard

    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file() and p.name != "stats.json":
            data = p.read_bytes()
            if plain and p.name.endswith(".zst"):
                data = zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True).read()
            h.update(p.name.encode() + data)
    return h.hexdigest()[:16]


def run_program(code: str, run: Path) -> dict:
    """Run a child program that fills RUN/clean and RUN/dedup and prints its JSON last: that JSON plus
    the digest of both outputs (for the byte-identity check)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_ENV)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["digest"] = tree_digest(run / "clean") + "/" + tree_digest(run / "dedup")
    res["plain"] = tree_digest(run / "clean", True) + "/" + tree_digest(run / "dedup", True)
    return res


def run_child(code_root: Path, paths: list[str], run: Path, executor: str, workers: int) -> dict:
    return run_program(_CHILD.format(root=str(code_root), paths=paths, run=str(run), executor=executor,
                                     workers=workers), run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shards", type=int, default=8)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--code", type=Path, help="also run another checkout (e.g. one whose driver decompresses "
                                              "every frame) with 1 and 2 workers, as a baseline")
    ap.add_argument("--dedup-input", nargs="+", help="instead: `dedup -i` of these files (a dump other tools "
                    "wrote, e.g. bench_dedup_speed.py --big-mb 800 --keep DIR), 1 vs 2 workers (and --code)")
    ap.add_argument("--repeat", type=int, default=1, help="with --dedup-input: runs of each, the fastest wall kept")
    args = ap.parse_args()
    if args.dedup_input:
        with tempfile.TemporaryDirectory() as tmp:
            roots = ([("baseline", args.code)] if args.code else []) + [("this", ROOT)]
            dedup_input_runs(roots, args.dedup_input, Path(tmp), args.repeat)
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_dump(Path(tmp) / "dump", args.shards, args.copies)
        sides = [("this", "local", 1), ("this", "local", 2)] + ([] if args.no_ray else [("this", "ray", 2)])
        if args.code:
            sides = [("baseline", "local", 1), ("baseline", "local", 2), *sides]
        rows = {}
        for code, executor, workers in sides:
            root = args.code if code == "baseline" else ROOT
            ticks = cpu_ticks()
            r = run_child(root, paths, Path(tmp) / f"{code}-{executor}{workers}", executor, workers)
            r["steal"] = steal_share(ticks, cpu_ticks())
            rows[(code, executor, workers)] = r
            print(f"{code:8s} {executor:5s} workers={workers} ({r['records']:,} files, {r['mb']:.0f} MB), steal {r['steal']:.0%}:", flush=True)
            for stage in ("stream", "dedup"):
                s = r[stage]
                share = s["driver_cpu_s"] / max(s["driver_cpu_s"] + s["workers_cpu_s"], 1e-9)
                print(f"    {stage:6s} {s['wall_s']:6.1f} s wall, driver CPU {s['driver_cpu_s']:6.1f} s, workers CPU "
                      f"{s['workers_cpu_s']:6.1f} s (driver's share {share:.0%})", flush=True)
        for code in ("baseline", "this"):
            if (code, "local", 2) in rows:
                one, two = rows[(code, "local", 1)], rows[(code, "local", 2)]
                print(f"{code}: 2 vs 1 workers: stream x{one['stream']['wall_s'] / two['stream']['wall_s']:.2f}, "
                      f"dedup x{one['dedup']['wall_s'] / two['dedup']['wall_s']:.2f}")
        if ("this", "ray", 2) in rows:
            ray, two = rows[("this", "ray", 2)], rows[("this", "local", 2)]
            print(f"ray vs local, 2 workers: stream {ray['stream']['wall_s'] - two['stream']['wall_s']:+.1f} s, "
                  f"dedup {ray['dedup']['wall_s'] - two['dedup']['wall_s']:+.1f} s (Ray's start and shutdown, "
                  "object store, task overhead; Ray's workers are not this process's children: their CPU is not counted)")
        for code in ("baseline", "this"):
            digests = {r["digest"] for k, r in rows.items() if k[0] == code}
            if digests:
                print(f"{code}: outputs byte-identical:", len(digests) == 1)
        print("uncompressed outputs identical across checkouts:", len({r["plain"] for r in rows.values()}) == 1)


if __name__ == "__main__":
    main()
