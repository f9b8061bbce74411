"""CPU seconds of each thread of the driver, and of the workers, per phase of one `dedup` run.

    python benchmarks/profile_driver_threads.py INPUT... -o OUT [--workers 2]

The driver's threads (the main thread, the pool's manager and feeder threads, the writer's and the
spool removal's) are sampled from /proc/self/task every 20 ms and at each phase's ends (pass 1,
clustering, pass 2: found by wrapping the stage's own functions; nothing in the run changes); the
workers' CPU is that of the pool's processes reaped in the phase. Linux only. The sampler thread
itself shows as "sampler".
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
TICK = os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("inputs", nargs="+")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from preprocessing.dedup import near
    from preprocessing.dedup.index import NearDedupIndex
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.readers import InputConfig
    from preprocessing.stages.dedup import run_near_dedup

    names: dict[int, str] = {}
    cpu: dict[int, tuple[str, float]] = {}  # thread id -> (name, CPU seconds so far)
    lock = threading.Lock()

    def sample() -> None:
        for t in threading.enumerate():
            if t.native_id is not None:
                target = getattr(t, "_target", None)
                names[t.native_id] = (getattr(target, "__qualname__", None) or type(t).__name__) \
                    if t.name.startswith("Thread-") else t.name.split("-")[0]
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat") as f:
                    stat = f.read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            with lock:
                cpu[int(tid)] = (names.get(int(tid), "?"), (int(fields[11]) + int(fields[12])) / TICK)

    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            sample()
            stop.wait(0.02)

    marks: list[tuple[str, float, dict[int, tuple[str, float]], float]] = []

    def mark(name: str) -> None:
        sample()
        r = resource.getrusage(resource.RUSAGE_CHILDREN)
        with lock:
            marks.append((name, time.perf_counter(), dict(cpu), r.ru_utime + r.ru_stime))

    def wrap(owner, attr, before, after):
        real = getattr(owner, attr)

        def wrapped(*a, **k):
            mark(before)
            out = real(*a, **k)
            mark(after)
            return out
        setattr(owner, attr, wrapped)

    wrap(NearDedupIndex, "cluster", "pass 1 end", "clustered")
    wrap(near, "_filter_pass", "pass 2 start", "pass 2 end")
    threading.Thread(target=sampler, name="sampler", daemon=True).start()
    shutil.rmtree(args.output, ignore_errors=True)
    mark("start")
    run_near_dedup(NearDedupConfig(), InputConfig(paths=args.inputs), args.output, executor=args.workers)
    mark("end")
    stop.set()
    for (a, t0, c0, w0), (b, t1, c1, w1) in zip(marks, marks[1:]):
        if a == "clustered" and b == "pass 2 start":
            continue
        per: dict[str, float] = {}
        for tid, (name, seconds) in c1.items():
            d = seconds - c0.get(tid, (name, 0.0))[1]
            if d > 0.005:
                per[name] = per.get(name, 0.0) + d
        threads = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
        print(f"{a:>12} -> {b:<12} wall {t1 - t0:6.2f} s; driver threads CPU: {threads or '-'}; "
              f"workers CPU {w1 - w0:.2f} s")


if __name__ == "__main__":
    main()
