"""Benchmark: the decontamination filter (Aho-Corasick) vs a loop of `in` tests over the same patterns.

Reads real Python files of the local installation through the toolkit's own reader (the
embedded default of `cp-preprocess stream`), then times on one core, interleaved in chunks so
that load from other processes slows every side alike:

- normalisation alone (``normalize``: lowercase + remove whitespace, the floor of both sides),
- the filter's exact mode (normalise + one Aho-Corasick pass over all HumanEval patterns),
- the baseline: normalise + ``any(p in text for p in patterns)`` over the same normalised patterns,
- the filter with the 13-gram near-copy mode on (``ngram_threshold=0.5``).

It checks that the filter and the baseline drop the same files, and lists every file dropped.
Then it runs the default `stream` stage (one worker) on the first ``--stream-files`` files of the
installation with the filter on and off, alternately, and prints the overhead.

    python benchmarks/bench_decontam.py                  # ~4000 files, well under a minute
    python benchmarks/bench_decontam.py --max-files 0    # the whole installation
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import islice
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from preprocessing.filters.decontam import DecontamFilter, DecontamFilterConfig, normalize  # noqa: E402
from preprocessing.readers.local import PythonEnvReader  # noqa: E402
from preprocessing.record import CodeFile  # noqa: E402


def load_corpus(max_files: int) -> list[CodeFile]:
    """Files of the installation in the reader's order; with ``max_files``, every k-th file."""
    reader = PythonEnvReader()
    records = [r for u in reader.units() for r in reader.decode(u) if isinstance(r, CodeFile)]
    if max_files and len(records) > max_files:
        step = len(records) / max_files
        records = [records[int(i * step)] for i in range(max_files)]
    return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-files", type=int, default=4000, help="files sampled from the installation (0 = all)")
    ap.add_argument("--chunk", type=int, default=200, help="files per interleaved chunk")
    ap.add_argument("--stream-files", type=int, default=3000, help="files of the stream comparison (0 = skip it)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each stream side")
    args = ap.parse_args()

    records = load_corpus(args.max_files)
    mbytes = sum(len(r.content.encode("utf-8", "surrogatepass")) for r in records) / 1e6
    exact = DecontamFilter()
    ngram = DecontamFilter(DecontamFilterConfig(ngram_threshold=0.5), patterns=exact.patterns)
    patterns = [p.text for p in exact.patterns]
    labels = [f"decontaminated:{p.benchmark}" for p in exact.patterns]
    print(f"corpus: {len(records)} files, {mbytes:.1f} MB; {len(patterns)} HumanEval patterns "
          f"(min_chars {exact.config.min_chars})")

    def normalise_only(chunk: list[CodeFile]) -> list[None]:
        for r in chunk:
            normalize(r.content)
        return [None] * len(chunk)

    def in_loop(chunk: list[CodeFile]) -> list[str | None]:
        out = []
        for r in chunk:
            text = normalize(r.content)
            out.append(next((labels[i] for i, p in enumerate(patterns) if p in text), None))
        return out

    sides = {
        "normalise only (lower + strip whitespace)": normalise_only,
        "filter, exact (Aho-Corasick)": lambda chunk: [exact.filter(r) for r in chunk],
        "baseline: loop of `in` tests": in_loop,
        "filter, exact + 13-grams (threshold 0.5)": lambda chunk: [ngram.filter(r) for r in chunk],
    }
    times = dict.fromkeys(sides, 0.0)
    results: dict[str, list] = {k: [] for k in sides}
    for start in range(0, len(records), args.chunk):
        chunk = records[start : start + args.chunk]
        for name, fn in sides.items():
            t0 = time.perf_counter()
            results[name] += fn(chunk)
            times[name] += time.perf_counter() - t0

    ac = times["filter, exact (Aho-Corasick)"]
    for name, t in times.items():
        ratio = f"   x{times['baseline: loop of `in` tests'] / t:.1f} vs `in` loop" if name.startswith("filter") else ""
        print(f"  {name:44s} {t:7.2f} s  {mbytes / t:8.1f} MB/s per core{ratio}")
    print(f"  matching alone (exact filter - normalisation): "
          f"{mbytes / max(ac - times['normalise only (lower + strip whitespace)'], 1e-9):.0f} MB/s")
    same = results["filter, exact (Aho-Corasick)"] == results["baseline: loop of `in` tests"]
    print(f"exact filter and `in` loop drop the same files: {same}")
    for name in ("filter, exact (Aho-Corasick)", "filter, exact + 13-grams (threshold 0.5)"):
        hits = [(r, x) for r, x in zip(records, results[name]) if x]
        print(f"{name}: {len(hits)} files dropped")
        for r, reason in hits:
            p = (exact if "Aho" in name else ngram).match(r.content)
            print(f"  {reason}  {r.repo_name}/{r.path}  ({p.item} {p.field})")
    if args.stream_files:
        stream_overhead(args.stream_files, args.repeat)
    if not same:
        sys.exit(1)


def stream_overhead(n_files: int, repeat: int) -> None:
    """Wall time of the default `stream` with and without the filter, alternating runs (best of ``repeat``)."""
    import tempfile

    from preprocessing.readers import InputConfig
    from preprocessing.stages.stream import StreamConfig, run_stream

    best = {True: float("inf"), False: float("inf")}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            for on in (False, True):
                cfg = StreamConfig(input=InputConfig(limit=n_files))
                cfg.filters.decontamination.enabled = on
                t0 = time.perf_counter()
                stats = run_stream(cfg, Path(tmp) / f"{on}-{i}")
                best[on] = min(best[on], time.perf_counter() - t0)
    mb = stats["totals"]["bytes_read"] / 1e6
    print(f"stream, {n_files} files ({mb:.0f} MB), 1 worker, best of {repeat}: filter off {best[False]:.2f} s, "
          f"on {best[True]:.2f} s ({100 * (best[True] / best[False] - 1):+.1f} %)")
    # The same share without the run-to-run noise: the filter's own time on the files that reach it
    # (those the license, autogenerated and quality filters keep), against the stream's wall time.
    from preprocessing.filters import FiltersConfig, build_filters
    from preprocessing.filters.quality import file_metrics

    *others, decontam = build_filters(FiltersConfig())
    reader = PythonEnvReader()
    records = list(islice((r for u in reader.units() for r in reader.decode(u)), n_files))  # the stream's input
    reaching = []
    for r in records:
        if isinstance(r, CodeFile):
            r.metrics = file_metrics(r.content)
            if not any(f.filter(r) for f in others):
                reaching.append(r)
    t0 = time.perf_counter()
    for r in reaching:
        decontam.filter(r)
    t = time.perf_counter() - t0
    print(f"  the filter's own time on the {len(reaching)} files the other filters keep: {t:.2f} s "
          f"= {100 * t / best[False]:.1f} % of the stream without it")


if __name__ == "__main__":
    main()
