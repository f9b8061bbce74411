"""Trainer step time against a bare PyTorch loop over the same model and batches, on the CPU.

The bare loop is the floor: batches already in memory, no Accelerate, no logging, no DataLoader. The
trainer reads the same batches from the zstd shards through ShardDataset + DataLoader, goes through
Accelerate, logs every 10 steps and checks nothing else. Both use the same initial weights, learning-rate
schedule, accumulation and clipping, so their losses must agree (printed as a check).

    python benchmarks/trainer_overhead.py                 # ~1 minute: 60 steps x 3 rounds
    python benchmarks/trainer_overhead.py --steps 200 --rounds 5 --n-embd 256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from accelerate.utils import set_seed  # noqa: E402

from shards import ShardDataset  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.demo_data import build_demo_run  # noqa: E402
from training.model import build_model, load_tokenizer  # noqa: E402
from training.optim import build_optimizer, get_lr  # noqa: E402
from training.trainer import train  # noqa: E402


def bare_loop(cfg: TrainConfig, batches: list[torch.Tensor]) -> tuple[float, dict[int, float]]:
    """nanoGPT's loop, nothing else: median step time (first step excluded) and the logged losses."""
    set_seed(cfg.seed)
    model = build_model(cfg, load_tokenizer(cfg.tokenizer_dir))
    optimizer = build_optimizer(model, cfg, torch.device("cpu"))
    accum = cfg.global_batch_size // cfg.micro_batch_size
    times, losses = [], {}
    it = iter(batches)
    model.train()
    for step in range(cfg.max_steps):
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = get_lr(step, cfg)
        loss_sum = 0.0
        for _ in range(accum):
            batch = next(it)
            loss = model(input_ids=batch, labels=batch).loss
            (loss / accum).backward()
            loss_sum += loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - t0)
        if (step + 1) % cfg.log_every == 0:
            losses[step + 1] = float(loss_sum / accum)
    return statistics.median(times[1:]), losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="alternate trainer/bare runs; best of each")
    parser.add_argument("--n-embd", type=int, default=128)
    parser.add_argument("--n-layer", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads for both")
    parser.add_argument("--workers", type=int, default=1, help="trainer DataLoader workers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        run = build_demo_run(Path(tmp) / "run")
        base = dict(data_dir=str(run / "shards"), tokenizer_dir=str(run / "tokenizer"), n_layer=args.n_layer,
                    n_head=4, n_embd=args.n_embd, seq_length=128, global_batch_size=16, micro_batch_size=8,
                    max_steps=args.steps, warmup_steps=5, eval_batches=0, save_every=0, log_every=10,
                    num_workers=args.workers, trackers=[], progress_bar=False, export=False)
        cfg = TrainConfig(output_dir=str(Path(tmp) / "bare"), **base)
        dataset = ShardDataset(cfg.train_dir, global_batch_size=cfg.global_batch_size,
                               micro_batch_size=cfg.micro_batch_size, seed=cfg.seed)
        samples = iter(dataset)
        n_micro = cfg.max_steps * cfg.global_batch_size // cfg.micro_batch_size
        batches = [torch.stack([next(samples) for _ in range(cfg.micro_batch_size)]) for _ in range(n_micro)]

        trainer_times, bare_times = [], []
        for r in range(args.rounds):
            summary = train(TrainConfig(output_dir=str(Path(tmp) / f"trainer{r}"), **base))
            trainer_times.append(summary["step_time_s"])
            bare_time, bare_losses = bare_loop(cfg, batches)
            bare_times.append(bare_time)
            worst = max(abs(summary["losses"][s] - bare_losses[s]) for s in bare_losses)
            print(f"round {r}: trainer {summary['step_time_s'] * 1e3:.1f} ms/step, bare {bare_time * 1e3:.1f} "
                  f"ms/step, max |loss difference| {worst:.2e}", flush=True)
            assert worst < 1e-4, "trainer and bare loop diverged"

    trainer_best, bare_best = min(trainer_times), min(bare_times)
    tokens = cfg.global_batch_size * cfg.seq_length
    print(f"model {args.n_layer}x{args.n_embd}, {tokens} tokens/step, {args.threads} thread(s), "
          f"{args.workers} worker(s), best of {args.rounds} x {args.steps} steps (median step)")
    print(f"bare PyTorch loop: {bare_best * 1e3:.1f} ms/step ({tokens / bare_best:.0f} tokens/s)")
    print(f"trainer          : {trainer_best * 1e3:.1f} ms/step ({tokens / trainer_best:.0f} tokens/s)")
    print(f"ratio trainer/bare: {trainer_best / bare_best:.3f} (overhead {100 * (trainer_best / bare_best - 1):+.1f}%, "
          f"target <= +10%)")


if __name__ == "__main__":
    main()
