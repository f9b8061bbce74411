"""Benchmark: validation loss in bits per character of the `tiny` model trained on each pre-tokenizer's shards.

Fewer tokens are only worth having if the model predicts the code as well: a tokenizer with longer
tokens has fewer, harder predictions. Bits per character (loss per token x tokens / characters / ln 2)
puts tokenizations with different token counts on one scale.

Corpus: a keyed sample of the .py files of the local Python installation (one repository per
distribution), split by repository (10% of repositories, the tokenizer's held-out hash): the tokenizers
are trained, and the model is trained, on the other repositories only; validation is every file of the
held-out ones, the same files for every tokenizer. Per pre-tokenizer: `train_tokenizer` (same
vocabulary), `pack` (seq_length 128) of both parts, then `training/run.py` with configs/training/tiny.yaml
for the same number of optimizer steps and the same tokens per step (16 x 128), in a fresh process each,
evaluating the whole validation split at the end. The same steps (not the same wall clock) because the
machine's cores are shared; wall time is reported too.

    python benchmarks/bench_tokenizer_quality.py                        # 4 pre-tokenizers, 8k, 120 steps
    python benchmarks/bench_tokenizer_quality.py --steps 400 --pretokenizers gpt2,superword
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))



def export_split(out: Path, fraction: float, heldout_fraction: float, seed: int = 0) -> dict[str, dict[str, int]]:
    """A keyed ``fraction`` of the installation as out/{train,valid}/part-00000.jsonl.zst, valid = held-out repos."""
    import orjson
    import zstandard

    from preprocessing.hashing import keyed_uniform, record_key
    from preprocessing.readers import PythonEnvReader
    from preprocessing.record import CodeFile
    from preprocessing.stages.tokenizer import TokenizerConfig, is_heldout

    split_cfg = TokenizerConfig(heldout_fraction=heldout_fraction, seed=seed)
    info = {s: {"files": 0, "chars": 0, "repos": set()} for s in ("train", "valid")}
    writers = {}
    for s in info:
        (out / s).mkdir(parents=True)
        writers[s] = zstandard.ZstdCompressor(level=3).stream_writer(open(out / s / "part-00000.jsonl.zst", "wb"))
    for rec in PythonEnvReader().records():
        if (not isinstance(rec, CodeFile) or not rec.content
                or keyed_uniform(record_key(rec.repo_name, rec.path), "bench", seed) >= fraction):
            continue
        s = "valid" if is_heldout(rec, split_cfg) else "train"
        writers[s].write(orjson.dumps({"repo_name": rec.repo_name, "path": rec.path, "content": rec.content}) + b"\n")
        info[s]["files"] += 1
        info[s]["chars"] += len(rec.content)
        info[s]["repos"].add(rec.repo_name)
    for w in writers.values():
        w.close()
    return {s: {**v, "repos": sorted(v["repos"])} for s, v in info.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fraction", type=float, default=0.04, help="keyed fraction of the installation's files")
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--pretokenizers", default="gpt2,superword-curriculum,superword,code")
    ap.add_argument("--steps", type=int, default=120, help="optimizer steps of 16 x 128 tokens, every tokenizer")
    ap.add_argument("--heldout-fraction", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0, help="the model's seed (initial weights, data order)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the training process")
    args = ap.parse_args()

    from preprocessing.stages.pack import PackConfig, pack
    from preprocessing.stages.tokenizer import TokenizerConfig, train_tokenizer

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        info = export_split(tmp / "corpus", args.fraction, args.heldout_fraction)
        print(f"train: {info['train']['files']:,} files, {info['train']['chars'] / 1e6:.1f}M chars, "
              f"{len(info['train']['repos'])} repositories; valid (held-out repositories): "
              f"{info['valid']['files']:,} files, {info['valid']['chars'] / 1e6:.2f}M chars of "
              f"{', '.join(info['valid']['repos'])}", flush=True)
        for name in args.pretokenizers.split(","):
            run = tmp / name
            cfg = TokenizerConfig(vocab_size=args.vocab_size, pretokenizer=name, heldout_fraction=0.0,
                                  compare_gpt2=False, max_bytes=None)
            tstats = train_tokenizer(tmp / "corpus" / "train", run / "tokenizer", cfg)
            packed = {}
            for s in ("train", "valid"):
                pstats = pack(tmp / "corpus" / s, run / "tokenizer", run / f"pack-{s}",
                              PackConfig(seq_length=128, valid_fraction=0.0))
                (run / "shards").mkdir(exist_ok=True)
                (run / f"pack-{s}" / "train").rename(run / "shards" / s)  # held-out files are the valid split
                packed[s] = pstats["splits"]["train"]
            t0, cpu0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            out = subprocess.run(
                [sys.executable, str(ROOT / "training" / "run.py"), "--config", str(ROOT / "configs/training/tiny.yaml"),
                 f"data_dir={run / 'shards'}", f"tokenizer_dir={run / 'tokenizer'}", f"output_dir={run / 'model'}",
                 f"max_steps={args.steps}", "eval_every=0", "eval_batches=1000000", "save_every=0", "export=false",
                 "trackers=", "progress_bar=false", "num_workers=0", "resume=none", f"seed={args.seed}"],
                capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads)},
            )
            wall = time.perf_counter() - t0
            cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
            if out.returncode:
                sys.exit(f"training with {name} failed:\n{out.stderr[-3000:]}")
            metrics = [json.loads(line) for line in (run / "model" / "metrics.jsonl").read_text().splitlines()]
            val_loss = [m["val_loss"] for m in metrics if "val_loss" in m][-1]
            train_loss = [m["loss"] for m in metrics if "loss" in m][-1]
            v = packed["valid"]
            stream = v["tokens"] + v["eos_tokens"]
            bpc = val_loss * stream / info["valid"]["chars"] / math.log(2)
            rows.append({
                "pretokenizer": name, "vocab": tstats["totals"]["vocab_size"],
                "chars_per_token": info["valid"]["chars"] / v["tokens"], "valid_tokens": stream,
                "evaluated": (v["samples"] // 16) * 16 * 128 / stream,
                "train_chars_seen": args.steps * 16 * 128 * info["train"]["chars"] / (packed["train"]["tokens"] + packed["train"]["eos_tokens"]),
                "train_loss": train_loss, "val_loss": val_loss, "bpc": bpc, "tok_train_s": tstats["train_time_s"],
                "lm_wall_s": wall, "lm_cpu_s": cpu,
            })
            print(f"  {name}: {json.dumps(rows[-1])}", flush=True)

    base = next((r for r in rows if r["pretokenizer"] == "gpt2"), rows[0])
    print()
    print(f"tiny model (configs/training/tiny.yaml), {args.steps} steps x 16 x 128 tokens, vocab {args.vocab_size}")
    print("| pre-tokenizer | held-out chars/token | valid tokens | code seen in training (M chars) | "
          "val loss (nats/token) | **bits per char** | vs gpt2 | tokenizer train s | LM wall s | LM CPU s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['pretokenizer']} | {r['chars_per_token']:.3f} | {r['valid_tokens']:,} | "
              f"{r['train_chars_seen'] / 1e6:.2f} | {r['val_loss']:.4f} | **{r['bpc']:.4f}** | "
              f"{r['bpc'] / base['bpc'] - 1:+.1%} | {r['tok_train_s']:.1f} | {r['lm_wall_s']:.0f} | {r['lm_cpu_s']:.0f} |")
    print(f"(the loss is the mean over the whole valid split in full batches: "
          f"{min(r['evaluated'] for r in rows):.1%}-{max(r['evaluated'] for r in rows):.1%} of its tokens)")


if __name__ == "__main__":
    main()
