"""Benchmark: the secrets filter's prefiltered scan vs detect-secrets' plugins run on every line (same run).

Input: real files of the local Python installation, read through the toolkit's own reader (the
embedded default, `open_reader(InputConfig())`). Ours: `SecretsScanner.scan` (literal prefilter,
then the detect-secrets plugins and the e-mail/IP regexes on the selected lines only). Baseline: the
same detectors on every line (`scan(..., prefilter=False)`, what running the plugins per line costs),
on the first `--naive-mb` MB of the same files. Both sides run in this process, pinned to one core;
MB/s are UTF-8 MB per CPU second. Findings must be identical on the files both sides scanned.
Also prints precision and recall per kind on tests/data/secrets_labelled.jsonl.

    python benchmarks/bench_secrets.py                       # 3000 files, naive side on the first 8 MB
    python benchmarks/bench_secrets.py --files 0 --naive-mb 20
    python benchmarks/bench_secrets.py --stream 3000         # also: `stream` with secrets redact vs off
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from preprocessing.filters.secrets import KINDS, BudgetExceeded, SecretsFilterConfig, SecretsScanner, score_labelled  # noqa: E402
from preprocessing.readers import InputConfig, open_reader  # noqa: E402
from preprocessing.record import Rejected  # noqa: E402


def load(limit: int | None) -> list[tuple[str, str]]:
    reader = open_reader(InputConfig(limit=limit))
    out = []
    for unit in reader.units():
        for item in reader.decode(unit):
            if not isinstance(item, Rejected):
                out.append((item.path, item.content))
                if limit and len(out) >= limit:
                    return out
    return out


def timed(fn, texts):
    t0, c0 = time.perf_counter(), time.process_time()
    out = [fn(p, t) for p, t in texts]
    return out, time.perf_counter() - t0, time.process_time() - c0


def labelled_table(scanner: SecretsScanner) -> tuple[dict[str, Counter], float, float]:
    path = ROOT / "tests" / "data" / "secrets_labelled.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    score = {k: Counter(score_labelled(scanner, rows).get(k, {})) for k in KINDS}
    tp, fp, fn = (sum(s[x] for s in score.values()) for x in ("tp", "fp", "fn"))
    return score, tp / max(tp + fp, 1), tp / max(tp + fn, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=3000, help="files of the installation (0 = all)")
    ap.add_argument("--naive-mb", type=float, default=8.0, help="MB scanned by the every-line baseline")
    ap.add_argument("--stream", type=int, default=0, help="also run `stream` on this many files, secrets on vs off")
    ap.add_argument("--cpu", type=int, default=None, help="core to pin to (default: the last one)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        cpu = args.cpu if args.cpu is not None else max(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
    texts = load(args.files or None)
    mb = sum(len(t.encode("utf-8", "surrogatepass")) for _, t in texts) / 1e6
    scanner = SecretsScanner(SecretsFilterConfig())

    def ours(path: str, text: str):
        try:
            return scanner.scan(text, path)
        except BudgetExceeded:
            return "budget"

    found, wall, cpu_s = timed(ours, texts)
    kinds = Counter(f.kind for fs in found if fs != "budget" for f in fs)
    with_findings = sum(1 for fs in found if fs and fs != "budget")
    budget = sum(1 for fs in found if fs == "budget")
    print(f"input: {len(texts)} files, {mb:.1f} MB of the local Python installation")
    print(f"prefiltered scan:  {cpu_s:6.2f} s CPU ({wall:.2f} s wall)  {mb / cpu_s:6.1f} MB/s per core; "
          f"{with_findings} files with findings, {budget} over budget; findings {dict(kinds.most_common())}")

    subset, size = [], 0.0
    for (p, t), fs in zip(texts, found):
        if size >= args.naive_mb:
            break
        if fs != "budget":
            subset.append((p, t))
            size += len(t.encode("utf-8", "surrogatepass")) / 1e6
    fast, _, fast_cpu = timed(ours, subset)
    naive, nwall, ncpu = timed(lambda p, t: scanner.scan(t, p, prefilter=False), subset)
    same = fast == naive
    print(f"same {size:.1f} MB, prefiltered:        {fast_cpu:6.2f} s CPU  {size / fast_cpu:6.1f} MB/s per core")
    print(f"same {size:.1f} MB, every line (naive): {ncpu:6.2f} s CPU  {size / ncpu:6.1f} MB/s per core  "
          f"-> prefilter {ncpu / fast_cpu:.1f}x faster; findings identical: {same}")

    score, precision, recall = labelled_table(scanner)
    print(f"labelled set: precision {precision:.3f}, recall {recall:.3f}")
    print("| kind | tp | fp | fn | precision | recall |\n|---|---|---|---|---|---|")
    for k in KINDS:
        s = score[k]
        if sum(s.values()):
            p = s["tp"] / (s["tp"] + s["fp"]) if s["tp"] + s["fp"] else float("nan")
            r = s["tp"] / (s["tp"] + s["fn"]) if s["tp"] + s["fn"] else float("nan")
            print(f"| {k} | {s['tp']} | {s['fp']} | {s['fn']} | {p:.2f} | {r:.2f} |")
    if args.stream:
        stream_cost(args.stream)
    if not same:
        sys.exit("the prefiltered scan and the every-line scan disagree")


def stream_cost(limit: int) -> None:
    """`run_stream` (defaults, one worker) on the embedded default with secrets redact vs off, same run."""
    import tempfile

    from preprocessing.stages.stream import StreamConfig, run_stream

    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("off", "redact", "off", "redact"):
            cfg = StreamConfig(input=InputConfig(limit=limit))
            cfg.filters.secrets.mode = mode
            c0 = time.process_time()
            stats = run_stream(cfg, Path(tmp) / f"{mode}-{time.monotonic_ns()}")
            cpu_s = time.process_time() - c0
            mb = stats["totals"]["bytes_read"] / 1e6
            print(f"stream, secrets {mode:6s}: {stats['wall_time_s']:6.2f} s wall, {cpu_s:6.2f} s CPU, "
                  f"{mb / cpu_s:5.1f} MB/s per core; kept {stats['totals']['kept']}, "
                  f"edits {sum(stats['edits']['findings'].values())}")


if __name__ == "__main__":
    main()
