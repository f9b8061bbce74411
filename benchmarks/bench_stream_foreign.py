"""Benchmark: `cp-preprocess stream` on dumps other tools write, vs the plain CodeParrot loop and datatrove.

The dump is written as other tools write dumps: `json.dumps` with its defaults (ASCII escapes),
one record a line, compressed by the `zstd` CLI (``--writer zstd-cli``, the default) or by
python-zstandard's ``stream_writer`` (``--writer zstd-stream``). Shapes:

- ``small``: ``--files`` (200,000) small files of ~220 bytes, consecutive lines of the local
  Python installation's files (most of GitHub is small files: this measures the per-record cost);
- ``real``: the first ``--files`` (5,000: ~78 MB) files of the local installation, whole.

Baselines, same run, one core each (every side in its own process pinned to core 0, its CPU
seconds from wait4): the plain CodeParrot loop (``bench_stream.run_baseline``: json.loads,
CodeParrot's statistics, md5 exact dedup, gzip level 6 output) and, when installed (the
``[bench]`` extra), datatrove (``JsonlReader`` -> ``LambdaFilter`` with the same rules and md5
set -> ``JsonlWriter``, one task). Ours: ``run_stream`` with CodeParrot's settings, as in
bench_stream.py. ``--profile`` runs ours under cProfile in this process and prints the top
functions in microseconds per record.

    python benchmarks/bench_stream_foreign.py --shape small --files 200000
    python benchmarks/bench_stream_foreign.py --shape real --files 5000
    python benchmarks/bench_stream_foreign.py --shape small --files 100000 --profile
    python benchmarks/bench_stream_foreign.py --shape small --before /tmp/base   # also the code of another checkout
    python benchmarks/bench_stream_foreign.py --shape small --slope 5   # ours' CPU per record: the slope, 20,000 -> 200,000

``--slope RUNS`` measures the per-record cost without the start-up: ours alone, RUNS pinned runs
each (alternating) on the first SLOPE_FROM records and on ``--files`` records of the same rows; the
CPU difference per added record, of the fastest runs and of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SMALL_BYTES = 200  # a small file: consecutive lines up to at least this many characters


def installation_rows(shape: str, n: int) -> list[dict]:
    """``n`` raw CodeParrot-schema rows from the local installation: whole files (``real``) or
    runs of consecutive lines of about SMALL_BYTES (``small``)."""
    from preprocessing.readers import PythonEnvReader
    from preprocessing.record import CodeFile

    reader = PythonEnvReader()
    rows: list[dict] = []
    for unit in reader.units():
        for rec in reader.decode(unit):
            if not isinstance(rec, CodeFile):
                continue
            if shape == "real":
                rows.append({"repo_name": rec.repo_name, "path": rec.path, "copies": "1",
                             "size": str(rec.extra["size"]), "content": rec.content, "license": rec.license})
            else:
                piece: list[str] = []
                size = 0
                for line in rec.content.splitlines(keepends=True):
                    piece.append(line)
                    size += len(line)
                    if size >= SMALL_BYTES:
                        content = "".join(piece)
                        rows.append({"repo_name": rec.repo_name, "path": f"{rec.path}/{len(rows)}.py", "copies": "1",
                                     "size": str(len(content.encode())), "content": content, "license": rec.license})
                        piece, size = [], 0
                        if len(rows) == n:
                            return rows
            if len(rows) == n:
                return rows
    return rows


def write_dump(path: Path, rows: list[dict], writer: str) -> int:
    """The rows as json.dumps lines, compressed by the zstd CLI or python-zstandard's stream_writer."""
    raw = path.with_suffix("")
    with open(raw, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    if writer == "zstd-cli" and shutil.which("zstd"):
        subprocess.run(["zstd", "-q", "-3", "--rm", "-f", str(raw), "-o", str(path)], check=True)
    else:
        import zstandard

        with open(raw, "rb") as src, open(path, "wb") as dst, zstandard.ZstdCompressor(level=3).stream_writer(dst) as w:
            shutil.copyfileobj(src, w)
        raw.unlink()
    return sum(int(r["size"]) for r in rows)


def run_datatrove(inp: Path, out: Path) -> None:
    """datatrove's JsonlReader -> LambdaFilter (md5 set + CodeParrot's rules) -> JsonlWriter, one task."""
    import hashlib

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.filters import LambdaFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    import codeparrot_baseline as cp
    from preprocessing.hashing import keyed_uniform, record_key

    args = cp.CodeParrotArgs()
    uniques: set[str] = set()

    def keep(doc) -> bool:
        h = hashlib.md5(doc.text.strip().encode("utf-8")).hexdigest()
        if h in uniques:
            return False
        uniques.add(h)
        example = {"content": doc.text, **doc.metadata}
        example.update(cp.preprocess(example, with_hash=False))
        key = record_key(doc.metadata["repo_name"], doc.metadata["path"])
        return cp.keep(example, args, lambda rule: keyed_uniform(key, rule, 0))

    LocalPipelineExecutor(
        pipeline=[JsonlReader(str(inp.parent), glob_pattern=inp.name, text_key="content",
                              compression="zstd"),
                  LambdaFilter(keep),
                  JsonlWriter(str(out), compression="gzip")],
        tasks=1, workers=1, logging_dir=str(out.parent / "datatrove-logs"),
    ).run()


def profile_ours(inp: Path, run_dir: Path, top: int) -> None:
    """cProfile of ours in this process: the top functions by own time, in µs per record read."""
    import cProfile
    import pstats

    from bench_stream import run_ours

    prof = cProfile.Profile()
    prof.enable()
    run_ours(inp, run_dir)
    prof.disable()
    n = json.loads((run_dir / "clean" / "stats.json").read_text())["totals"]["records_read"]
    st = pstats.Stats(prof)
    total = st.total_tt
    print(f"profile: {n:,} records, {total:.2f} s under cProfile = {total / n * 1e6:.1f} µs/record")
    rows = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    for (file, line, name), (_cc, nc, tt, ct, _) in rows:
        where = f"{Path(file).name}:{line}" if line else file
        print(f"  {tt / n * 1e6:7.2f} µs/rec own  {ct / n * 1e6:7.2f} cum  {nc:>9,} calls  {where}:{name}")


SLOPE_FROM = 20_000
"""The smaller dump of ``--slope``: its start-up and imports are what the slope subtracts."""


def slope(shape: str, n: int, writer: str, work: Path, runs: int) -> dict:
    """Ours' CPU seconds per record between SLOPE_FROM and ``n`` records (the first rows of the
    same dump), from ``runs`` alternating pinned runs of each: of the fastest runs and the medians."""
    import statistics

    if not SLOPE_FROM < n:
        raise SystemExit(f"--slope needs --files above {SLOPE_FROM:,}")
    rows = installation_rows(shape, n)
    cpu: dict[int, list[float]] = {SLOPE_FROM: [], n: []}
    inputs = {}
    for k in cpu:
        inputs[k] = work / f"{shape}-{k}.jsonl.zst"
        if not inputs[k].exists():
            write_dump(inputs[k], rows[:k], writer)
    for _ in range(runs):
        for k in cpu:
            run_dir = work / f"slope-{k}"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir()
            cpu[k].append(measure("ours", inputs[k], run_dir)["cpu_s"])
    added = n - SLOPE_FROM
    return {"records": [SLOPE_FROM, n], "cpu_s": {str(k): [round(x, 3) for x in v] for k, v in cpu.items()},
            "us_per_record_best": round((min(cpu[n]) - min(cpu[SLOPE_FROM])) / added * 1e6, 2),
            "us_per_record_median": round((statistics.median(cpu[n]) - statistics.median(cpu[SLOPE_FROM])) / added * 1e6, 2)}


def measure(side: str, inp: Path, work: Path, script: str = __file__) -> dict:
    """One side in a fresh process pinned to one core: wall and CPU seconds of that process
    (``script``: this benchmark in another checkout, whose package it then imports)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, script, "--side", side, "--input", str(inp), "--work", str(work)],
                            preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{side} failed with status {status}")
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime}


def _digest(clean: Path) -> str:
    """sha256 of the run's output shards, in order."""
    import hashlib

    h = hashlib.sha256()
    for p in sorted(clean.glob("part-*.jsonl.zst")):
        h.update(p.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=["small", "real"], default="small")
    ap.add_argument("--files", type=int, default=None, help="records (default: 200,000 small / 5,000 real)")
    ap.add_argument("--writer", choices=["zstd-cli", "zstd-stream"], default="zstd-cli")
    ap.add_argument("--profile", action="store_true", help="cProfile ours only, top functions per record")
    ap.add_argument("--top", type=int, default=20)
    ap.add_argument("--no-datatrove", action="store_true", help="skip the datatrove baseline")
    ap.add_argument("--keep", type=Path, help="keep the dump and the runs in this directory")
    ap.add_argument("--before", type=Path, help="also run ours from this checkout (e.g. a `git worktree` of the "
                    "commit before a change), in the same run: prints its CPU seconds and ours' speed-up over it")
    ap.add_argument("--slope", type=int, metavar="RUNS", help=f"instead: ours' CPU per record, the slope between "
                    f"the first {SLOPE_FROM:,} records and --files (RUNS pinned runs of each, alternating)")
    ap.add_argument("--side", choices=["baseline", "datatrove", "ours"])
    ap.add_argument("--input", type=Path)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    if args.side == "baseline":
        from bench_stream import run_baseline

        run_baseline(args.input, args.work / "baseline.jsonl.gz")
        return
    if args.side == "datatrove":
        run_datatrove(args.input, args.work / "datatrove")
        return
    if args.side == "ours":
        from bench_stream import run_ours

        run_ours(args.input, args.work / "run")
        return
    n = args.files or (200_000 if args.shape == "small" else 5_000)
    with tempfile.TemporaryDirectory(prefix="bench-foreign-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if args.slope:
            res = slope(args.shape, n, args.writer, work, args.slope)
            print(json.dumps(res))
            print(f"ours, CPU per record from {SLOPE_FROM:,} to {n:,} records ({args.slope} runs each): "
                  f"{res['us_per_record_best']} µs (fastest runs), {res['us_per_record_median']} µs (medians)")
            return
        inp = work / f"{args.shape}-{n}.jsonl.zst"
        if not inp.exists():
            nbytes = write_dump(inp, installation_rows(args.shape, n), args.writer)
        else:
            nbytes = 0
        if args.profile:
            profile_ours(inp, work / "profile-run", args.top)
            return
        sides = ["baseline", "ours"]
        try:
            import datatrove  # noqa: F401

            if not args.no_datatrove:
                sides.insert(1, "datatrove")
        except ImportError:
            print("datatrove not installed (pip install -e .[bench]): no datatrove baseline")
        res = {s: measure(s, inp, work) for s in sides}
        if args.before:
            before_work = work / "before"
            before_work.mkdir(exist_ok=True)
            res["before"] = measure("ours", inp, before_work, str(args.before / "benchmarks" / Path(__file__).name))
        stats = json.loads((work / "run" / "clean" / "stats.json").read_text())
        records = stats["totals"]["records_read"]
        ours = res["ours"]
        row = {"shape": args.shape, "writer": args.writer, "records": records, "mb": round(nbytes / 1e6, 1),
               "kept": stats["totals"]["kept"],
               **{f"{s}_cpu_s": round(r["cpu_s"], 2) for s, r in res.items()},
               **{f"{s}_wall_s": round(r["wall_s"], 2) for s, r in res.items()},
               "ours_us_per_record_cpu": round(ours["cpu_s"] / records * 1e6, 1),
               **{f"vs_{s}_cpu": round(r["cpu_s"] / ours["cpu_s"], 2) for s, r in res.items() if s != "ours"}}
        if args.before:
            same = _digest(work / "run" / "clean") == _digest(work / "before" / "run" / "clean")
            row["before_us_per_record_cpu"] = round(res["before"]["cpu_s"] / records * 1e6, 1)
            row["kept_bytes_identical_to_before"] = same
        print(json.dumps(row))
        print("\n| shape | records | plain loop CPU s | datatrove CPU s | stream CPU s | µs/record | vs loop | vs datatrove |")
        print("|---|---|---|---|---|---|---|---|")
        dt = f"{res['datatrove']['cpu_s']:.2f}" if "datatrove" in res else "—"
        print(f"| {args.shape} ({args.writer}) | {records:,} | {res['baseline']['cpu_s']:.2f} | {dt} | "
              f"{ours['cpu_s']:.2f} | {row['ours_us_per_record_cpu']} | **{row['vs_baseline_cpu']}×** | "
              f"{row.get('vs_datatrove_cpu', '—')}× |")

if __name__ == "__main__":
    main()
