"""Near-dedup speed: the datasketch recipe against `cp-preprocess dedup`, same input, same cores.

The input is a keyed sample of this Python installation's files written as a JSONL.zst dump,
by ``--dump``:

* ``toolkit``: as `stream` writes RUN/clean (orjson, content last, 256 KiB zstd frames): the
  toolkit's own output, the best case for `dedup`;
* ``zstd-cli``: the way other tools write dumps: ``json.dumps`` with its defaults (``\\uXXXX`` for
  every non-ASCII character, surrogate pairs for emoji, ``", "`` and ``": "``) in CodeParrot's
  key order (repo_name, path, size, content, license: content not last), compressed by the
  ``zstd`` command-line tool (one frame);
* ``zstd-stream``: the same lines compressed by python-zstandard's ``stream_writer`` (one frame
  of unknown size, as a streaming writer leaves it).

Each method runs in a fresh process, end to end from the dump to the deduplicated shards, and
the wall time includes the interpreter start and imports (the toolkit's cache warm: the MinHash
permutations in ``$CODEPARROT_CACHE_DIR``, a directory of this run, written before timing; the C
kernels are compiled at install, nothing at run time). A cold run (``dedup`` on the smaller input
with an empty ``CODEPARROT_CACHE_DIR``: the first run on a machine) and the start-up alone
(process start to the first signature, cold and warm) are reported too:

* datasketch recipe (CodeParrot's minhash_deduplication.py): tokens = set of NON_ALPHA-split
  tokens (files under 10 skipped), MinHash(num_perm=256).update_batch, MinHashLSH(threshold=0.85),
  query then insert; MinHashes computed in ``--workers`` processes, kept records written in the
  same single pass (no second pass, no verification: generous to the baseline).
* rensa recipe (``pip install .[bench]``; skipped when rensa is missing): the same tokens and
  query-then-insert loop with rensa's ``RMinHash(num_perm=256)`` and ``RMinHashLSH(threshold=0.85,
  num_bands=16)`` (rensa needs bands dividing num_perm: 16x16), each candidate verified by its
  estimated Jaccard (``jaccard() >= 0.85``) before a file counts as a duplicate.
* ours: the `dedup` command (two passes, verified clusters, clusters.jsonl.zst, stats.json).

Two input sizes (``--mb`` and 4x ``--mb``) give MB/s per core, peak RSS (main process and
largest worker) and the CPU time of each run (user + system, the process and its workers), which
is steadier than wall time on a loaded machine.

    python benchmarks/bench_dedup_speed.py                  # 10 and 40 MB, 1 worker, ~1 min
    python benchmarks/bench_dedup_speed.py --dump zstd-cli --mb 20    # json.dumps + the zstd CLI
    python benchmarks/bench_dedup_speed.py --mb 50 --workers 2
    python benchmarks/bench_dedup_speed.py --mb 40 --repeat 3    # fastest of 3 runs of each (noisy machines)
    python benchmarks/bench_dedup_speed.py --big-mb 800          # ~800 MB: the installation repeated with edits
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NON_ALPHA = re.compile("[^A-Za-z_0-9]")


DUMPS = ("toolkit", "zstd-cli", "zstd-stream")
ZSTD_CLI = "/usr/bin/zstd"


def make_dump(out_dir: Path, mb: float, seed: int = 0, dump: str = "toolkit") -> float:
    """Write about ``mb`` MB of the installation's files to out_dir/part-*.jsonl.zst as ``dump``
    says (see the module docstring); returns the MB of content written."""
    import shutil

    import zstandard

    from preprocessing.hashing import keyed_uniform, record_key
    from preprocessing.readers import InputConfig, open_reader
    from preprocessing.record import CodeFile
    from preprocessing.writers import ShardedJsonlWriter

    total = 0
    for item in open_reader(InputConfig()).records():
        if isinstance(item, CodeFile):
            total += len(item.content.encode("utf-8", "surrogatepass"))
    frac = min(1.0, mb * 1e6 / max(total, 1))
    chosen = [item for item in open_reader(InputConfig()).records()
              if isinstance(item, CodeFile) and keyed_uniform(record_key(item.repo_name, item.path), "bench_speed", seed) < frac]
    size = sum(len(item.content.encode("utf-8", "surrogatepass")) for item in chosen)
    out_dir.mkdir(parents=True, exist_ok=True)
    if dump == "toolkit":
        with ShardedJsonlWriter(out_dir, "part", 64 << 20) as w:
            for item in chosen:
                w.write(item)
        return size / 1e6
    lines = (json.dumps({"repo_name": it.repo_name, "path": it.path, "size": str(len(it.content.encode("utf-8", "surrogatepass"))),
                         "content": it.content, "license": it.license}) + "\n" for it in chosen)
    target = out_dir / "part-00000.jsonl.zst"
    if dump == "zstd-stream":
        with open(target, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as z:
            for line in lines:
                z.write(line.encode())
    elif dump == "zstd-cli":
        if shutil.which(ZSTD_CLI) is None:
            raise SystemExit(f"--dump zstd-cli needs {ZSTD_CLI}")
        plain = out_dir / "part-00000.jsonl"
        with open(plain, "w", encoding="utf-8") as f:
            f.writelines(lines)
        subprocess.run([ZSTD_CLI, "-q", "-3", "--rm", str(plain), "-o", str(target)], check=True)
    else:
        raise ValueError(dump)
    return size / 1e6


def _edit(content: str, key: bytes, copy: int) -> str:
    """A copy's content: the file with a few small edits, as forks and vendored copies have them
    (keyed, so the dump is the same on every run): a comment line inserted, a line dropped and,
    for one copy in five, a fifth of the file replaced by other code (then it is no near-duplicate)."""
    from preprocessing.hashing import keyed_uniform

    lines = content.split("\n")
    u = [keyed_uniform(key, f"edit{copy}:{k}") for k in range(4)]
    lines.insert(int(u[0] * len(lines)), f"# copy {copy}: local change")
    if len(lines) > 2:
        del lines[int(u[1] * len(lines))]
    if u[2] < 0.2 and len(lines) > 5:
        start, n = int(u[3] * len(lines) * 0.8), max(1, len(lines) // 5)
        lines[start:start + n] = [f"value_{copy}_{i} = compute_{i}(value_{copy}_{i - 1})" for i in range(n)]
    return "\n".join(lines)


def make_big_dump(out_dir: Path, mb: float) -> float:
    """About ``mb`` MB (content bytes) of the whole installation repeated with edits, as a real
    dump has forks and vendored copies: every file once as it is and in edited copies (:func:`_edit`,
    other repo_name; a keyed sample of the copies, to reach ``mb``), all in a keyed order, written with ``json.dumps`` (CodeParrot's key order)
    and compressed by the ``zstd`` CLI (one frame); returns the MB of content written."""
    import math
    import shutil

    import xxhash

    from preprocessing.hashing import keyed_uniform, record_key
    from preprocessing.readers import InputConfig, open_reader
    from preprocessing.record import CodeFile

    if shutil.which(ZSTD_CLI) is None:
        raise SystemExit(f"--big-mb needs {ZSTD_CLI}")
    files = [it for it in open_reader(InputConfig()).records() if isinstance(it, CodeFile)]
    total = sum(len(it.content.encode("utf-8", "surrogatepass")) for it in files)
    copies = max(1, math.ceil(mb * 1e6 / total))  # every file once, the edited copies sampled to reach mb
    frac = (mb * 1e6 / total - 1) / (copies - 1) if copies > 1 else 0.0
    order = sorted((xxhash.xxh3_64_intdigest(key + bytes([c])), i, c)
                   for i, it in enumerate(files) for key in [record_key(it.repo_name, it.path)] for c in range(copies)
                   if c == 0 or keyed_uniform(key, f"copy{c}") < frac)
    out_dir.mkdir(parents=True, exist_ok=True)
    plain = out_dir / "part-00000.jsonl"
    size = 0
    with open(plain, "w", encoding="utf-8") as f:
        for _h, i, c in order:
            it = files[i]
            key = record_key(it.repo_name, it.path)
            content = it.content if c == 0 else _edit(it.content, key, c)
            nbytes = len(content.encode("utf-8", "surrogatepass"))
            size += nbytes
            repo = it.repo_name if c == 0 else f"{it.repo_name}-fork{c}"
            f.write(json.dumps({"repo_name": repo, "path": it.path, "size": str(nbytes), "content": content,
                                "license": it.license}) + "\n")
    subprocess.run([ZSTD_CLI, "-q", "-3", "--rm", str(plain), "-o", str(out_dir / "part-00000.jsonl.zst")], check=True)
    return size / 1e6


# ----------------------------------------------------------------------------- children


def _rows_and_tokens(unit):
    """The recipes' shared map step: decode a unit, yield (output line, token set or None when < 10 tokens)."""
    import orjson

    from preprocessing.record import Rejected

    for item in _READER.decode(unit):
        if isinstance(item, Rejected):
            continue
        line = orjson.dumps(item.to_json_dict()) + b"\n"
        tokens = {t for t in NON_ALPHA.split(item.content) if len(t.strip()) > 0}
        yield line, (tokens if len(tokens) >= 10 else None)


def _minhash_unit(unit):  # runs in a worker: decode, tokenize, MinHash (the recipe's map step)
    from datasketch import MinHash

    out = []
    for line, tokens in _rows_and_tokens(unit):
        m = None
        if tokens is not None:
            m = MinHash(num_perm=256)
            m.update_batch([t.encode() for t in tokens])
        out.append((line, m))
    return out


def _rensa_unit(unit):  # the rensa recipe's map step: decode, tokenize, RMinHash
    from rensa import RMinHash

    out = []
    for line, tokens in _rows_and_tokens(unit):
        m = None
        if tokens is not None:
            m = RMinHash(num_perm=256, seed=42)
            m.update(list(tokens))
        out.append((line, m))
    return out


def _run_recipe(inp: Path, out: Path, workers: int, unit_fn, seen) -> dict:
    """A recipe's driver: MinHashes from ``unit_fn`` in workers, in input order; ``seen(key, minhash)``
    queries and inserts into the recipe's LSH and says whether the file is a near-duplicate."""
    from preprocessing.executors.pool import ordered_map
    from preprocessing.readers import JsonlReader
    from preprocessing.writers import ShardedJsonlWriter

    reader = JsonlReader([str(inp / "part-*.jsonl.zst")])
    removed = key = 0
    with ShardedJsonlWriter(out, "part") as w:
        for batch in ordered_map(unit_fn, reader.units(), workers=workers, window=2 * workers,
                                 initializer=_init, initargs=(reader,)):
            for line, m in batch:
                key += 1
                if m is not None and seen(key, m):
                    removed += 1
                    continue
                w.write_line(line)
    return {"removed": removed}


def run_rensa(inp: Path, out: Path, workers: int) -> dict:
    from rensa import RMinHashLSH

    lsh = RMinHashLSH(threshold=0.85, num_perm=256, num_bands=16)
    kept: dict[int, object] = {}

    def seen(key: int, m) -> bool:  # verified query, then insert
        dup = any(m.jaccard(kept[c]) >= 0.85 for c in lsh.query(m))
        lsh.insert(key, m)
        kept[key] = m
        return dup

    return _run_recipe(inp, out, workers, _rensa_unit, seen)


_READER = None


def _init(reader):
    global _READER
    _READER = reader


def run_datasketch(inp: Path, out: Path, workers: int) -> dict:
    from datasketch import MinHashLSH

    lsh = MinHashLSH(threshold=0.85, num_perm=256)

    def seen(key: int, m) -> bool:  # the recipe: query, then insert every file
        dup = bool(lsh.query(m))
        lsh.insert(key, m)
        return dup

    return _run_recipe(inp, out, workers, _minhash_unit, seen)


def run_ours(inp: Path, out: Path, workers: int) -> dict:
    from preprocessing.cli.dedup import dedup_command

    dedup_command.main(["-i", str(inp / "part-*.jsonl.zst"), "-o", str(out), "--workers", str(workers)],
                       standalone_mode=False)
    stats = json.loads((out / "stats.json").read_text())
    return {"removed": stats["near_dedup"]["removed"], "pass1_s": stats["pass1_s"],
            "cluster_s": stats["cluster_s"], "pass2_s": stats["pass2_s"]}


def sketch_only(inp: Path) -> tuple[float, float, float, float]:
    """In one process, on the same in-memory texts: (MB, datasketch s, ours s, ours-with-numpy s) for
    the dedup core (tokenize, MinHash, LSH, clusters), without reading or writing files."""
    from datasketch import MinHash, MinHashLSH

    from preprocessing.dedup.index import cluster_contents
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.readers import JsonlReader
    from preprocessing.record import CodeFile

    texts = [r.content for r in JsonlReader([str(inp / "part-*.jsonl.zst")]).records() if isinstance(r, CodeFile)]
    mb = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts) / 1e6
    t = time.perf_counter()
    lsh = MinHashLSH(threshold=0.85, num_perm=256)
    for i, text in enumerate(texts):
        tokens = {x for x in NON_ALPHA.split(text) if len(x.strip()) > 0}
        if len(tokens) < 10:
            continue
        m = MinHash(num_perm=256)
        m.update_batch([x.encode() for x in tokens])
        lsh.query(m)
        lsh.insert(i, m)
    t_ds = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as tmp:
        cluster_contents(texts[:10], NearDedupConfig(), tmp)  # warm
        t = time.perf_counter()
        cluster_contents(texts, NearDedupConfig(), tmp)
        t_ours = time.perf_counter() - t
        t = time.perf_counter()
        cluster_contents(texts, NearDedupConfig(backend="numpy"), tmp)
        t_np = time.perf_counter() - t
    return mb, t_ds, t_ours, t_np


def peak_rss_mb() -> float:
    """This process's peak RSS in MB: VmHWM of /proc/self/status (proc(5): its own memory's high
    water mark, new at exec), else ru_maxrss, which Linux carries over from the parent at the fork
    (a parent that built the big dump in memory would make every child's look that big)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(method: str, inp: Path, out: Path, workers: int) -> None:
    fn = {"ours": run_ours, "datasketch": run_datasketch, "rensa": run_rensa}[method]
    res = fn(inp, out, workers)
    res["rss_main_mb"] = peak_rss_mb()
    res["rss_worker_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    res["cpu_s"] = sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                       for f in ("ru_utime", "ru_stime"))
    print("RESULT " + json.dumps(res))


# ----------------------------------------------------------------------------- parent


def timed(method: str, inp: Path, out: Path, workers: int, cache: Path) -> dict:
    # Imports as a normal installation does them, from cached bytecode (a sandbox may set
    # PYTHONDONTWRITEBYTECODE, which makes every process compile this repo's modules: ~30 ms).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["CODEPARROT_CACHE_DIR"] = str(cache)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", method, "--input", str(inp), "--output", str(out),
                           "--workers", str(workers)], capture_output=True, text=True, cwd=ROOT, check=False, env=env)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed:\n{proc.stderr[-3000:]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    return {"wall_s": wall, **json.loads(line[len("RESULT "):])}


START_UP = """
import resource, time
t = time.perf_counter()
from preprocessing.dedup.minhash import MinHashSignature, NearDedupConfig
h = MinHashSignature(NearDedupConfig())
h.band_keys(h.signatures([b"def first(signature): return 1"]).sig)
r = resource.getrusage(resource.RUSAGE_SELF)
print(r.ru_utime + r.ru_stime, time.perf_counter() - t)
"""


def start_up(cache: Path) -> tuple[float, float]:
    """(CPU s of the whole process, wall s from the first import) to the first signature and band
    keys, in a fresh process with ``cache`` as the toolkit's cache directory."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["CODEPARROT_CACHE_DIR"] = str(cache)
    proc = subprocess.run([sys.executable, "-c", START_UP], capture_output=True, text=True, cwd=ROOT, env=env,
                          check=True)
    cpu, wall = proc.stdout.split()
    return float(cpu), float(wall)


def big(tmp: Path, mb: float, methods: list[str], workers: int, cache: Path, keep: Path | None = None) -> None:
    """One run of each method on :func:`make_big_dump`'s dump (built in ``keep`` when given, or
    reused from there); their CPU and wall ratios."""
    inp = keep or tmp / "big"
    t = time.perf_counter()
    if not (inp / "part-00000.jsonl.zst").exists():
        make_big_dump(inp, mb)
    with subprocess.Popen([ZSTD_CLI, "-dcq", str(inp / "part-00000.jsonl.zst")], stdout=subprocess.PIPE) as proc:
        # streamed: a child's peak RSS (ru_maxrss) starts from this process's at the fork
        real_mb = sum(int(json.loads(line)["size"]) for line in proc.stdout) / 1e6  # type: ignore[union-attr]
    size = (inp / "part-00000.jsonl.zst").stat().st_size / 1e6
    print(f"big dump {inp}: {real_mb:.1f} MB of content ({size:.1f} MB compressed), ready in {time.perf_counter() - t:.0f}s")
    res = {m: timed(m, inp, tmp / f"out-big-{m}", workers, cache) for m in methods}
    print(f"{'method':>11s} {'wall s':>7s} {'cpu s':>7s} {'RSS main':>9s} {'removed':>8s} {'vs datasketch wall / cpu':>25s}"
          + (f" {'vs rensa wall / cpu':>20s}" if "rensa" in res else ""))
    nan = {"wall_s": float("nan"), "cpu_s": float("nan")}  # a baseline left out (--methods)
    for m, r in res.items():
        ds = res.get("datasketch", nan)
        line = (f"{m:>11s} {r['wall_s']:7.1f} {r['cpu_s']:7.1f} {r['rss_main_mb']:8.0f}M {r['removed']:8d} "
                f"{ds['wall_s'] / r['wall_s']:11.1f}x / {ds['cpu_s'] / r['cpu_s']:5.1f}x")
        if "rensa" in res:
            line += f" {res['rensa']['wall_s'] / r['wall_s']:10.1f}x / {res['rensa']['cpu_s'] / r['cpu_s']:4.1f}x"
        print(line)
    if "ours" not in res:
        return
    o = res["ours"]
    print(f"ours: pass1 {o['pass1_s']:.1f}s, cluster {o['cluster_s']:.1f}s, pass2 {o['pass2_s']:.1f}s (wall)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=10.0, help="smaller input size in MB (the larger is 4x)")
    ap.add_argument("--workers", type=int, default=1, help="worker processes, the same for both methods")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each method per size, alternating; the fastest (wall) is reported")
    ap.add_argument("--dump", choices=DUMPS, default="toolkit",
                    help="how the input is written: as `stream` does (toolkit) or json.dumps + zstd CLI / stream_writer")
    ap.add_argument("--big-mb", type=float, default=0.0,
                    help="instead: one run of each method on a dump of about this many MB, the whole installation "
                         "repeated with edits (json.dumps + zstd CLI)")
    ap.add_argument("--keep", type=Path, help="with --big-mb: build the dump in this folder, or reuse the one there")
    ap.add_argument("--methods", default="datasketch,rensa,ours",
                    help="comma-separated methods to run (a baseline measured once can be left out; ratios "
                         "to a method left out print as nan)")
    ap.add_argument("--child", choices=["ours", "datasketch", "rensa"], help=argparse.SUPPRESS)
    ap.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.input, args.output, args.workers)
        return
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"  # the toolkit's cache of this run: cold first, then warm
        cold_cpu, cold_wall = start_up(tmp / "cache-cold-start")
        warm = tmp / "warm"
        make_dump(warm, 0.2, dump=args.dump)
        methods = [m for m in args.methods.split(",") if m != "rensa" or importlib.util.find_spec("rensa")]
        if not methods or not set(methods) <= {"datasketch", "rensa", "ours"}:
            raise SystemExit(f"--methods: a comma-separated subset of datasketch,rensa,ours, got {args.methods!r}")
        if not args.big_mb and not {"datasketch", "ours"} <= set(methods):
            raise SystemExit("--methods without --big-mb: datasketch and ours are both needed (the table's ratios)")
        for method in methods:  # the permutations and bytecode written before timing
            timed(method, warm, tmp / f"warm_{method}", args.workers, cache)
        warm_cpu, warm_wall = start_up(cache)
        print(f"dump: {args.dump}; workers={args.workers} (both methods); wall = process start to exit, imports "
              f"included; fastest of {args.repeat} run(s) each; cache warm")
        print(f"start-up to the first signature: cold (empty cache) {cold_wall:.2f}s wall / {cold_cpu:.2f}s CPU; "
              f"warm {warm_wall:.2f}s wall / {warm_cpu:.2f}s CPU")
        if args.big_mb:
            big(tmp, args.big_mb, methods, args.workers, cache, args.keep)
            return
        print(f"{'input MB':>8s} {'method':>11s} {'wall s':>7s} {'MB/s/core':>9s} {'RSS main':>9s} "
              f"{'RSS wkr':>8s} {'removed':>8s} {'speedup':>8s} {'cpu s':>6s} {'cpu speedup':>11s}")
        for mb in (args.mb, 4 * args.mb):
            inp = tmp / f"in{mb}"
            real_mb = make_dump(inp, mb, dump=args.dump)
            runs: dict[str, list[dict]] = {m: [] for m in methods}
            for _ in range(args.repeat):  # alternating, so that a noisy spell hits both methods
                for m, done in runs.items():
                    done.append(timed(m, inp, tmp / f"out-{m}-{mb}", args.workers, cache))
            res = {m: min(r, key=lambda x: x["wall_s"]) for m, r in runs.items()}
            for m, r in res.items():
                speed = real_mb / r["wall_s"] / args.workers
                ratio = res["datasketch"]["wall_s"] / r["wall_s"]
                cpu_ratio = res["datasketch"]["cpu_s"] / r["cpu_s"]
                print(f"{real_mb:8.1f} {m:>11s} {r['wall_s']:7.2f} {speed:9.1f} {r['rss_main_mb']:8.0f}M "
                      f"{r['rss_worker_mb']:7.0f}M {r['removed']:8d} {ratio:7.1f}x {r['cpu_s']:6.2f} {cpu_ratio:10.1f}x")
            o = res["ours"]
            if "rensa" in res:
                print(f"{'':8s} ours vs the rensa recipe: {res['rensa']['wall_s'] / o['wall_s']:.1f}x wall, "
                      f"{res['rensa']['cpu_s'] / o['cpu_s']:.1f}x CPU")
            print(f"{'':8s} ours: pass1 {o['pass1_s']:.2f}s, cluster {o['cluster_s']:.2f}s, pass2 {o['pass2_s']:.2f}s")
            if mb == args.mb:  # the first run on a machine (an empty cache)
                c = timed("ours", inp, tmp / f"out-cold-{mb}", args.workers, tmp / f"cache-cold-{mb}")
                print(f"{'':8s} ours cold (empty cache): {c['wall_s']:.2f}s wall / {c['cpu_s']:.2f}s CPU; "
                      f"ratio to the recipe {res['datasketch']['wall_s'] / c['wall_s']:.1f}x wall / "
                      f"{res['datasketch']['cpu_s'] / c['cpu_s']:.1f}x CPU")
        mb, t_ds, t_ours, t_np = sketch_only(tmp / f"in{4 * args.mb}")
        print(f"dedup core only (in memory, 1 process, no I/O), {mb:.1f} MB: datasketch {t_ds:.2f}s "
              f"({mb / t_ds:.1f} MB/s), ours {t_ours:.2f}s ({mb / t_ours:.1f} MB/s): {t_ds / t_ours:.1f}x; "
              f"ours with the numpy backend instead of the C kernels {t_np:.2f}s ({mb / t_np:.1f} MB/s)")


if __name__ == "__main__":
    main()
