"""Benchmark: `cp-preprocess stream` on a duplicate-heavy dump vs the plain CodeParrot loop.

The dump is written the way other tools write dumps: `json.dumps` with its defaults (ASCII
escapes), one record a line, compressed by the `zstd` CLI (python-zstandard's stream_writer
where the CLI is missing). ``--records`` records, of which ``--unique`` distinct files of the
local Python installation that CodeParrot's rules keep (``--any-files``: any), each repeated under other repository names (forks), in rounds:
99.97% exact duplicates by default. The baseline is the plain CodeParrot loop that dedups first
(json.loads, md5 of the stripped content, a set; CodeParrot's statistics and filters only on a
new hash; gzip level 6 output); ours (CodeParrot's settings, as in bench_stream.py) skips the
filters of a record that repeats one its unit kept. Same machine, same run, one core each.

    python benchmarks/bench_stream_duplicates.py                       # 300,000 records, 90 unique
    python benchmarks/bench_stream_duplicates.py --records 100000 --unique 30
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))


def unique_files(n: int, kept_only: bool) -> list[dict]:
    """The first ``n`` files of the installation of 100-2000 bytes (with ``kept_only``: that CodeParrot's
    rules keep), as raw CodeParrot-schema rows."""
    import codeparrot_baseline as cp
    from preprocessing.hashing import keyed_uniform, record_key
    from preprocessing.readers import PythonEnvReader
    from preprocessing.record import CodeFile

    args = cp.CodeParrotArgs()
    reader = PythonEnvReader()
    rows: list[dict] = []
    for unit in reader.units():
        for rec in reader.decode(unit):
            if isinstance(rec, CodeFile) and 100 <= rec.extra["size"] <= 2000:
                row = {"repo_name": rec.repo_name, "path": rec.path, "copies": "1",
                       "size": str(rec.extra["size"]), "content": rec.content, "license": rec.license}
                example = dict(row, **cp.preprocess(row, with_hash=False))
                if kept_only and not cp.keep(example, args, lambda rule: keyed_uniform(record_key(row["repo_name"], row["path"]), rule, 0)):
                    continue
                rows.append(row)
                if len(rows) == n:
                    return rows
    return rows


def write_dump(path: Path, records: int, unique: int, kept_only: bool = True) -> int:
    """``records`` json.dumps lines cycling over ``unique`` files (fork i: another repo_name); bytes of content."""
    rows = unique_files(unique, kept_only)
    raw = path.with_suffix("")
    nbytes = 0
    with open(raw, "w", encoding="utf-8") as f:
        for i in range(records):
            r = rows[i % len(rows)]
            if i >= len(rows):
                r = dict(r, repo_name=f"fork{i}/{r['repo_name']}")
            f.write(json.dumps(r) + "\n")
            nbytes += int(r["size"])
    if shutil.which("zstd"):
        subprocess.run(["zstd", "-q", "-3", "--rm", "-f", str(raw), "-o", str(path)], check=True)
    else:
        import zstandard

        with open(raw, "rb") as src, open(path, "wb") as dst, zstandard.ZstdCompressor(level=3).stream_writer(dst) as w:
            shutil.copyfileobj(src, w)
        raw.unlink()
    return nbytes


def run_baseline(inp: Path, out: Path) -> dict:
    """The plain loop: md5 table first, CodeParrot's statistics and rules on new hashes only."""
    import gzip
    import hashlib
    import io

    import zstandard

    import codeparrot_baseline as cp
    from preprocessing.hashing import keyed_uniform, record_key

    args = cp.CodeParrotArgs()
    uniques: set[str] = set()
    reader = io.TextIOWrapper(zstandard.ZstdDecompressor().stream_reader(open(inp, "rb"), read_across_frames=True),
                              encoding="utf-8")
    with gzip.open(out, "wb", compresslevel=6) as w:
        for line in reader:
            example = json.loads(line)
            h = hashlib.md5(example["content"].strip().encode("utf-8")).hexdigest()
            if h in uniques:
                continue
            uniques.add(h)
            example.update(cp.preprocess(example, with_hash=False))
            key = record_key(example["repo_name"], example["path"])
            if cp.keep(example, args, lambda rule: keyed_uniform(key, rule, 0)):
                row = {k: example[k] for k in ("repo_name", "path", "copies", "size", "content", "license")}
                w.write((json.dumps(row) + "\n").encode())
    return {}


def measure(side: str, inp: Path, work: Path, script: str = __file__) -> dict:
    """One side in a fresh process pinned to one core: its wall and CPU seconds (``script``: this
    benchmark in another checkout, whose package it then imports)."""
    import os
    import time

    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, script, "--side", side, "--input", str(inp), "--work", str(work)],
                            preexec_fn=lambda: os.sched_setaffinity(0, {0}))
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"{side} failed")
    return {"wall_s": time.perf_counter() - t0, "cpu_s": usage.ru_utime + usage.ru_stime}


def main() -> None:

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--unique", type=int, default=90)
    ap.add_argument("--any-files", action="store_true",
                    help="repeat any files, not only files the filters keep (repeats of dropped files run the filters)")
    ap.add_argument("--before", type=Path, help="also run ours from this checkout (the code before a change), same run")
    ap.add_argument("--side", choices=["baseline", "ours"])
    ap.add_argument("--input", type=Path)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    if args.side == "baseline":
        run_baseline(args.input, args.work / "baseline.jsonl.gz")
        return
    if args.side == "ours":
        from bench_stream import run_ours

        run_ours(args.input, args.work / "run")
        return
    with tempfile.TemporaryDirectory(prefix="bench-dups-") as tmp:
        work = Path(tmp)
        inp = work / "dump.jsonl.zst"
        nbytes = write_dump(inp, args.records, args.unique, not args.any_files)
        base = measure("baseline", inp, work)
        ours = measure("ours", inp, work)
        stats = json.loads((work / "run" / "clean" / "stats.json").read_text())
        row = {"records": args.records, "unique": args.unique, "mb": round(nbytes / 1e6, 1),
               "baseline_s": round(base["wall_s"], 2), "ours_s": round(ours["wall_s"], 2),
               "speedup": round(base["wall_s"] / ours["wall_s"], 2), "kept": stats["totals"]["kept"],
               "exact_duplicate": stats["totals"]["dropped"].get("exact_duplicate", 0),
               "baseline_cpu_s": round(base["cpu_s"], 2), "ours_cpu_s": round(ours["cpu_s"], 2),
               "speedup_cpu": round(base["cpu_s"] / ours["cpu_s"], 2),
               "ours_us_per_record_cpu": round(ours["cpu_s"] / args.records * 1e6, 1)}
        if args.before:
            (work / "before").mkdir()
            before = measure("ours", inp, work / "before", str(args.before / "benchmarks" / Path(__file__).name))
            same = all((work / "run" / "clean" / p.name).read_bytes() == p.read_bytes()
                       for p in (work / "before" / "run" / "clean").glob("part-*.jsonl.zst"))
            row.update(before_cpu_s=round(before["cpu_s"], 2), speedup_cpu_vs_before=round(before["cpu_s"] / ours["cpu_s"], 2),
                       kept_bytes_identical_to_before=same)
        print(json.dumps(row))
        print(f"\n| records | unique | MB | CodeParrot loop s | stream s | speed-up |\n|---|---|---|---|---|---|\n"
              f"| {row['records']:,} | {row['unique']} | {row['mb']} | {row['baseline_s']} | {row['ours_s']} | "
              f"**{row['speedup']}×** |")


if __name__ == "__main__":
    main()
