"""Benchmark: offline packing (`pack`) against the seed's on-the-fly ConstantLengthDataset.

Corpus: a keyed sample of the .py files of the local Python installation as a .jsonl.zst dump (see
bench_tokenizer.py), and a 32k byte-level BPE tokenizer trained on it. Both sides read the records
through the same reader. Baseline: CodeParrot's ConstantLengthDataset (scripts/codeparrot_training.py)
as written: buffers of seq_length * 3.6 * 1024 characters, the HF fast tokenizer called on each buffer
(multithreaded in Rust), Python lists extended with EOS, one torch tensor per sample, each buffer's
tail dropped. It only iterates (no output written). Ours: `pack` with 1 and 2 worker processes, writing
zstd token shards. Each run is its own process; CPU time counts its children, so "per core" = per
CPU-second. Optionally a single synthetic file of --huge-mb MB is packed to show bounded memory.

    python benchmarks/bench_pack.py                    # ~5% of the installation (~15 MB), < 1 min
    python benchmarks/bench_pack.py --fraction 0.3 --huge-mb 50
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

SEQ_LENGTH = 1024


def baseline(dump: Path, tokenizer: Path) -> dict:
    """The seed's ConstantLengthDataset over the dump, drained."""
    import torch
    from transformers import AutoTokenizer

    from preprocessing.stats import StageStats
    from preprocessing.stages.tokenizer import iter_records

    tok = AutoTokenizer.from_pretrained(str(tokenizer))
    concat_token_id = tok.bos_token_id
    input_characters = SEQ_LENGTH * 3.6 * 1024
    stats = StageStats("baseline")
    nbytes = 0

    def contents():
        nonlocal nbytes
        for r in iter_records([dump], stats):
            nbytes += len(r.content.encode("utf-8", "surrogatepass"))
            yield r.content

    iterator = contents()
    samples = tokens = 0
    more_examples = True
    while more_examples:
        buffer, buffer_len = [], 0
        while True:
            if buffer_len >= input_characters:
                break
            try:
                buffer.append(next(iterator))
                buffer_len += len(buffer[-1])
            except StopIteration:
                more_examples = False
                break
        tokenized_inputs = tok(buffer, truncation=False)["input_ids"]
        all_token_ids = []
        for tokenized_input in tokenized_inputs:
            all_token_ids.extend(tokenized_input + [concat_token_id])
        tokens += len(all_token_ids)
        for i in range(0, len(all_token_ids), SEQ_LENGTH):
            input_ids = all_token_ids[i : i + SEQ_LENGTH]
            if len(input_ids) == SEQ_LENGTH:
                torch.tensor(input_ids)
                samples += 1
    return {"tokens": tokens, "samples": samples, "bytes": nbytes}


def ours(dump: Path, tokenizer: Path, out: Path, workers: int) -> dict:
    from preprocessing.stages.pack import PackConfig, pack

    s = pack(dump, tokenizer, out, PackConfig(seq_length=SEQ_LENGTH, valid_fraction=0.005), executor=workers)
    samples = s["totals"]["samples"]
    return {"tokens": s["totals"]["tokens"], "samples": samples, "bytes": s["stages"]["pack"]["bytes_in"],
            "inexact_cuts": s["totals"]["inexact_cuts"],
            "shard_mb": sum(s["splits"][k]["shards"]["compressed_bytes"] for k in ("train", "valid")) / 1e6}


def child(args: argparse.Namespace) -> None:
    """One side, timed from after its imports: wall, CPU (this process's threads + its workers), peak RSS."""
    import tokenizers  # noqa: F401  (imports are not timed)

    import preprocessing.stages.pack  # noqa: F401

    if args.child == "baseline":
        import torch  # noqa: F401
        import transformers  # noqa: F401

    def cpu() -> float:
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return time.process_time() + c.ru_utime + c.ru_stime

    wall0, cpu0 = time.perf_counter(), cpu()
    if args.child == "baseline":
        result = baseline(args.dump, args.tokenizer)
    else:
        result = ours(args.dump, args.tokenizer, args.out, int(args.child.split("-")[1]))
    result.update(wall_s=time.perf_counter() - wall0, cpu_s=cpu() - cpu0,
                  peak_rss_mb=max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024)
    print(json.dumps(result))


def measured(side: str, dump: Path, tokenizer: Path, out: Path) -> dict:
    """Run one side in a fresh process."""
    cmd = [sys.executable, __file__, "--child", side, "--dump", str(dump), "--tokenizer", str(tokenizer), "--out", str(out)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "side": side}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.05, help="keyed fraction of the installation's files")
    ap.add_argument("--huge-mb", type=float, default=0, help="also pack one synthetic file of this many MB")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dump", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--tokenizer", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return

    from bench_tokenizer import export_sample

    from preprocessing.stages.tokenizer import TokenizerConfig, train_tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dump = tmp / "dedup" / "part-00000.jsonl.zst"
        files, nbytes, repos = export_sample(dump, args.fraction, seed=1)
        tokenizer = tmp / "tokenizer"
        train_tokenizer(dump, tokenizer, TokenizerConfig(compare_gpt2=False, heldout_fraction=0.0, max_bytes=8 << 20))
        print(f"corpus: {files:,} files, {nbytes / 1e6:.1f} MB, {repos} repositories; 32k tokenizer; "
              f"seq_length {SEQ_LENGTH}; {os.cpu_count()} CPUs (shared)")
        rows = [measured("baseline", dump, tokenizer, tmp / "unused")]
        rows += [measured(f"ours-{w}", dump, tokenizer, tmp / f"shards{w}") for w in (1, 2)]
        same = (tmp / "shards1" / "train").exists() and all(
            (tmp / "shards1" / s / p.name).read_bytes() == p.read_bytes()
            for s in ("train", "valid") for p in (tmp / "shards2" / s).iterdir()
        )
        print()
        print("| side | wall s | CPU s | tokens/s (wall) | MB/s (wall) | MB/s per core | samples | packed % of tokens | peak RSS MB |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            name = {"baseline": "ConstantLengthDataset (seed)", "ours-1": "pack, 1 worker", "ours-2": "pack, 2 workers"}[r["side"]]
            print(f"| {name} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['tokens'] / r['wall_s']:,.0f} | "
                  f"{r['bytes'] / 1e6 / r['wall_s']:.2f} | {r['bytes'] / 1e6 / r['cpu_s']:.2f} | {r['samples']:,} | "
                  f"{r['samples'] * SEQ_LENGTH / r['tokens']:.2%} | {r['peak_rss_mb']:.0f} |")
        base = rows[0]
        for r in rows[1:]:
            print(f"{r['side']}: {base['wall_s'] / r['wall_s']:.2f}x the baseline's wall-clock speed, "
                  f"{base['cpu_s'] / r['cpu_s']:.2f}x per CPU-second")
        print(f"1 and 2 workers byte-identical shards: {same}; shards {rows[1]['shard_mb']:.1f} MB")

        if args.huge_mb:
            from preprocessing.stats import StageStats
            from preprocessing.stages.tokenizer import iter_records
            from tests._pycorpus import write_jsonl_zst

            text = "".join(r.content for r in iter_records([dump], StageStats("x")))
            size = int(args.huge_mb * 1e6)
            big = (text * (size // len(text) + 1))[:size]
            huge = write_jsonl_zst(tmp / "huge" / "part-00000.jsonl.zst", [{"repo_name": "r", "path": "big.py", "content": big}])
            del big, text
            for side in ("ours-1", "ours-2"):
                r = measured(side, huge, tokenizer, tmp / f"huge-{side}")
                print(f"one {args.huge_mb:.0f} MB file, {side}: {r['wall_s']:.1f}s wall, {r['bytes'] / 1e6 / r['wall_s']:.2f} MB/s, "
                      f"{r['tokens']:,} tokens, peak RSS {r['peak_rss_mb']:.0f} MB (largest process), "
                      f"inexact cuts {r['inexact_cuts']}")


if __name__ == "__main__":
    main()
