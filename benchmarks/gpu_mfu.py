"""Tokens/s and model FLOPs utilisation of the trainer on one GPU (codeparrot-small, bf16), in minutes.

Builds its own data offline (a byte-level BPE trained on the local Python standard library, packed into
1024-token shards), then runs the real trainer (training.trainer.train) on the `codeparrot-small` preset for
a few dozen steps and reports the median tokens/s and MFU of the logged intervals after the first.
Run it through benchmarks/gpu_mfu.sh (accelerate launch with configs/accelerate/gpu-1.yaml: bf16).

    accelerate launch --config_file configs/accelerate/gpu-1.yaml benchmarks/gpu_mfu.py --out /tmp/mfu
    python benchmarks/gpu_mfu.py --smoke --out /tmp/mfu     # a CPU check of the script itself
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from training.config import load_train_config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def prepare_data(run_dir: Path, vocab_size: int, seq_length: int, corpus_bytes: int) -> Path:
    """Tokenizer + train/valid shards from the standard library (reused if already there)."""
    from shards import ShardReader
    from training.demo_data import build_demo_run

    if (run_dir / "shards" / "valid" / "index.json").is_file():
        return run_dir
    t0 = time.perf_counter()
    build_demo_run(run_dir, seq_length=seq_length, vocab_size=vocab_size, train_bytes=corpus_bytes,
                   valid_bytes=1 << 20, corpus_bytes=corpus_bytes)
    n = ShardReader(run_dir / "shards" / "train").num_samples
    print(f"data: {n} train samples of {seq_length} tokens, vocabulary {vocab_size}, "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/out/gpu_mfu", help="where data, run and results go")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--micro", type=int, default=24, help="micro batch per GPU (divides 192)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the forward pass")
    parser.add_argument("--smoke", action="store_true", help="tiny model and data, to check the script on a CPU")
    args = parser.parse_args()

    out = Path(args.out)
    smoke = dict(n_layer=2, n_head=4, n_embd=128, seq_length=128, global_batch_size=16,
                 micro_batch_size=8) if args.smoke else {}
    preset = load_train_config(ROOT / "configs/training/codeparrot-small.yaml", smoke)
    run = prepare_data(out / "data", vocab_size=2000 if args.smoke else 32768, seq_length=preset.seq_length,
                       corpus_bytes=(2 << 20) if args.smoke else (12 << 20))
    tag = f"micro{args.micro if not args.smoke else 8}{'-compile' if args.compile else ''}"
    cfg = load_train_config(ROOT / "configs/training/codeparrot-small.yaml", {
        **smoke, "data_dir": str(run / "shards"), "tokenizer_dir": str(run / "tokenizer"),
        "output_dir": str(out / "runs" / tag), "resume": "none", "max_steps": args.steps, "warmup_steps": 5,
        "micro_batch_size": 8 if args.smoke else args.micro, "eval_batches": 0, "save_every": 0,
        "log_every": 5, "export": False, "trackers": [], "compile": args.compile, "num_workers": 4})
    if Path(cfg.output_dir).exists():
        import shutil

        shutil.rmtree(cfg.output_dir)

    from training.trainer import train

    t0 = time.perf_counter()
    summary = train(cfg)
    wall = time.perf_counter() - t0
    if summary["rank"] != 0:
        return
    records = [json.loads(line) for line in (Path(cfg.output_dir) / "metrics.jsonl").read_text().splitlines()]
    steady = [r for r in records if "tokens_per_s" in r][1:]  # the first interval holds start-up and compile
    result = {
        "config": tag, "n_params": summary["n_params"], "steps": summary["steps"],
        "tokens_per_step": cfg.global_batch_size * cfg.seq_length,
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
        "mfu": statistics.median(r["mfu"] for r in steady) if steady and steady[0]["mfu"] is not None else None,
        "median_step_s": summary["step_time_s"], "wall_s": wall, "final_loss": summary["losses"][summary["steps"]],
    }
    import torch

    result["device"] = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    result["max_memory_gb"] = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    print("RESULT " + json.dumps(result), flush=True)
    with (out / "results.jsonl").open("a") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
