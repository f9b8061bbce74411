"""CPU and wall seconds per phase of one `dedup` run (start-up, pass 1, clustering, pass 2), in this process.

    python benchmarks/profile_dedup_phases.py INPUT... -o OUT [--workers 1] [--cprofile FILE]

Start-up is the process up to the stage's start (interpreter, imports); the C kernels are
imported in pass 1, on first use, and timed apart. The
phases are found by wrapping the stage's own functions; nothing in the run changes.
"""

from __future__ import annotations

import argparse
import cProfile
import resource
import shutil
import sys
import time
from pathlib import Path

T_START = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--cprofile", help="also write a cProfile of the run (the phases then include its overhead)")
    args = ap.parse_args()

    from preprocessing.dedup import native, near
    from preprocessing.dedup.index import NearDedupIndex
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.readers import InputConfig
    from preprocessing.stages.dedup import run_near_dedup

    marks: dict[str, tuple[float, float]] = {}

    def mark(name: str) -> None:
        marks.setdefault(name, (cpu(), time.perf_counter()))

    def wrap(owner, attr, before=None, after=None):
        real = getattr(owner, attr)

        def wrapped(*a, **k):
            if before:
                mark(before)
            out = real(*a, **k)
            if after:
                mark(after)
            return out
        setattr(owner, attr, wrapped)

    wrap(NearDedupIndex, "cluster", before="pass1_end", after="cluster_end")
    wrap(near, "_filter_pass", after="pass2_end")
    loads: list[float] = []
    kernel = native.kernel

    def timed_kernel(name):  # (the first call imports the extension; later ones cost nothing)
        t = cpu()
        out = kernel(name)
        loads.append(cpu() - t)
        return out
    native.kernel = timed_kernel

    shutil.rmtree(args.output, ignore_errors=True)
    mark("start")
    prof = cProfile.Profile() if args.cprofile else None
    if prof:
        prof.enable()
    st = run_near_dedup(NearDedupConfig(), InputConfig(paths=args.inputs), args.output, executor=args.workers)
    if prof:
        prof.disable()
        prof.dump_stats(args.cprofile)
    mark("end")
    order = ["start", "pass1_end", "cluster_end", "pass2_end", "end"]
    names = ["pass 1 (read + sketch)", "LSH clustering", "pass 2 (read + write)", "stats, publish"]
    c0 = marks["start"][0]
    print(f"start-up (interpreter + imports): cpu {c0:.2f} s, wall {marks['start'][1] - T_START:.2f} s")
    for name, a, b in zip(names, order, order[1:]):
        print(f"{name}: cpu {marks[b][0] - marks[a][0]:.2f} s, wall {marks[b][1] - marks[a][1]:.2f} s")
    print(f"  of pass 1, loading the kernels: cpu {sum(loads):.2f} s")
    print(f"total cpu {cpu():.2f} s; records {st['totals']['records_read']}, kept {st['totals']['kept']}")


if __name__ == "__main__":
    main()
