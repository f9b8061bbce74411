"""The training loop: GPT-2 over ShardDataset with Accelerate, read top to bottom like nanoGPT's train.py."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm

from common.io import publish_dir, staging_dir
from shards import tokenizer_hash
from training.checkpoint import find_resume_checkpoint, load_checkpoint, save_checkpoint
from training.config import TrainConfig, to_dict
from training.data import (
    check_shards,
    local_inputs,
    make_loader,
    num_valid_batches,
    train_dataset,
    valid_batches,
    valid_dataset,
)
from training.model import (
    build_model,
    device_peak_flops,
    flops_per_token,
    load_tokenizer,
)
from training.optim import build_optimizer, get_lr

EXPORT_DIR = "final"


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Train (or continue training) the model described by cfg; returns a summary of the run."""
    cfg = local_inputs(cfg)  # a data_dir / tokenizer_dir by URL: read from a checked local copy
    output_dir = Path(cfg.output_dir)
    if "wandb" in cfg.trackers and importlib.util.find_spec("wandb") is None:
        raise ValueError("trackers: wandb is not installed; `pip install wandb` or set trackers=tensorboard")
    # Several processes but no GPU (accelerate launch --multi_gpu on a CPU machine): train on the CPU over
    # gloo. Without cpu=True, Accelerate would leave each process alone in a world of one.
    cpu_distributed = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    accelerator = Accelerator(
        cpu=cpu_distributed,
        log_with=cfg.trackers or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
    )
    device, rank, world = accelerator.device, accelerator.process_index, accelerator.num_processes
    per_step = world * cfg.micro_batch_size
    if cfg.global_batch_size % per_step:
        raise ValueError(f"global_batch_size={cfg.global_batch_size} is not divisible by world_size x "
                         f"micro_batch_size = {world} x {cfg.micro_batch_size}; change global_batch_size "
                         f"or micro_batch_size")
    accum = cfg.global_batch_size // per_step
    tokens_per_step = cfg.global_batch_size * cfg.seq_length

    # Everything that can be wrong with the inputs fails here, before a single step is taken.
    tok_hash = tokenizer_hash(cfg.tokenizer_dir)
    check_shards(cfg, tok_hash)
    resume_from = find_resume_checkpoint(cfg)
    valid = valid_dataset(cfg, rank, world) if cfg.eval_batches else None
    n_eval = num_valid_batches(cfg, valid) if valid is not None else 0
    if cfg.eval_batches and n_eval == 0:
        raise ValueError(f"{cfg.valid_dir} holds fewer samples than one global batch "
                         f"({cfg.global_batch_size}); pack more validation data or set eval_batches=0")
    tokenizer = load_tokenizer(cfg.tokenizer_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    # Model and optimizer. The same seed on every rank gives the same initial weights; dropout then
    # gets a per-rank stream. Gradients are all-reduced by DDP (or sharded by FSDP) via prepare().
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # the fp32 parts (norms, softmax) use tensor cores
        torch.backends.cudnn.allow_tf32 = True
    set_seed(cfg.seed)
    model = build_model(cfg, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())
    fpt = flops_per_token(model, cfg.n_layer, cfg.n_embd, cfg.seq_length)
    set_seed(cfg.seed + rank)
    optimizer = build_optimizer(model, cfg, device)
    model, optimizer = accelerator.prepare(model, optimizer)
    forward = torch.compile(model) if cfg.compile else model  # `model` stays uncompiled for saving

    step = 0
    if resume_from is not None:
        # restores model, optimizer and the RNG of every rank
        state = load_checkpoint(accelerator, resume_from, cfg, tok_hash)
        step = state["step"]

    # Data: each rank reads only its own slice of every global batch, so the DataLoader is deliberately
    # NOT passed to accelerator.prepare (which would dispatch batches from rank 0 or re-shard them).
    dataset = train_dataset(cfg, rank, world, tok_hash)
    dataset.load_state_dict(dataset.state_dict(consumed_samples=step * cfg.global_batch_size))
    batches = iter(make_loader(dataset, cfg, pin_memory=device.type == "cuda"))

    accelerator.init_trackers(cfg.run_name, config=_tracker_config(cfg))
    metrics_file = output_dir / "metrics.jsonl"
    peak = device_peak_flops(device, cfg.peak_flops)
    accelerator.print(f"model: {n_params / 1e6:.1f}M parameters, {world} process(es), {accum} micro batch(es) "
                      f"of {cfg.micro_batch_size} per step, {tokens_per_step} tokens per step, "
                      f"{'resuming at step ' + str(step) if step else 'fresh start'}")

    def log(record: dict[str, Any]) -> None:
        accelerator.log({k: v for k, v in record.items() if k != "step" and v is not None}, step=record["step"])
        if accelerator.is_main_process:
            with metrics_file.open("a") as f:
                f.write(json.dumps(record) + "\n")

    @torch.no_grad()
    def evaluate() -> float:
        """Mean token loss over the fixed validation batches, averaged over all ranks."""
        model.eval()
        total = torch.zeros(2, device=device)  # (sum of micro-batch mean losses, number of micro batches)
        for batch in valid_batches(valid, cfg, world, n_eval, pin_memory=device.type == "cuda"):  # type: ignore[arg-type]
            batch = batch.to(device, non_blocking=True)
            total += torch.stack([forward(input_ids=batch, labels=batch).loss.float(), torch.ones((), device=device)])
        model.train()
        total = accelerator.reduce(total, reduction="sum")
        return (total[0] / total[1]).item()

    summary: dict[str, Any] = {"start_step": step, "losses": {}, "evals": [], "n_params": n_params,
                               "rank": rank, "world_size": world, "accumulation_steps": accum}
    progress = tqdm(total=cfg.max_steps, initial=step, desc="train", dynamic_ncols=True,
                    disable=not (accelerator.is_main_process and cfg.progress_bar and sys.stderr.isatty()))
    step_times: list[float] = []
    last_log_time, last_log_step = time.perf_counter(), step
    model.train()
    while step < cfg.max_steps:
        t0 = time.perf_counter()
        lr = get_lr(step, cfg)
        for group in optimizer.param_groups:
            group["lr"] = lr

        # Gradient accumulation: DDP all-reduces gradients only on the last micro batch of the step.
        loss_sum = torch.zeros((), device=device)
        seen: list[str] = []
        for micro in range(accum):
            batch = next(batches)
            if cfg.trace:
                seen += [_digest(sample) for sample in batch]
            batch = batch.to(device, non_blocking=True)
            with accelerator.no_sync(model) if micro < accum - 1 else nullcontext():
                loss = forward(input_ids=batch, labels=batch).loss
                accelerator.backward(loss / accum)
            loss_sum += loss.detach()
        # With grad_clip=0 the norm is still computed (for the logs) but nothing is clipped.
        grad_norm = accelerator.clip_grad_norm_(model.parameters(), cfg.grad_clip or math.inf)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        step_times.append(time.perf_counter() - t0)
        progress.update(1)
        if cfg.trace:
            _trace(cfg, rank, {"step": step, "samples": seen})

        if step % cfg.log_every == 0 or step == cfg.max_steps:
            loss_value = accelerator.reduce(loss_sum / accum, reduction="mean").item()  # syncs the device
            if hasattr(grad_norm, "full_tensor"):  # FSDP2 returns a DTensor (every rank logs this step)
                grad_norm = grad_norm.full_tensor()
            now = time.perf_counter()
            tokens_per_s = (step - last_log_step) * tokens_per_step / (now - last_log_time)
            last_log_time, last_log_step = now, step
            mfu = fpt * tokens_per_s / (peak * world) if peak else None
            record = {"step": step, "loss": loss_value, "lr": lr, "grad_norm": float(grad_norm),
                      "tokens_per_s": tokens_per_s, "mfu": mfu, "tokens_seen": step * tokens_per_step}
            log(record)
            summary["losses"][step] = loss_value
            progress.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:.0f}")

        t_aside = time.perf_counter()  # evaluation and checkpoint time, kept out of tokens/s
        if n_eval and ((cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.max_steps):
            val_loss = evaluate()
            record = {"step": step, "val_loss": val_loss, "val_perplexity": math.exp(min(val_loss, 50.0))}
            log(record)
            summary["evals"].append(record)
            accelerator.print(f"step {step}: val_loss {val_loss:.4f}, perplexity {record['val_perplexity']:.2f}")

        if (cfg.save_every and step % cfg.save_every == 0) or step == cfg.max_steps:
            data_state = dataset.state_dict(consumed_samples=step * cfg.global_batch_size)
            summary["checkpoint"] = str(save_checkpoint(
                accelerator, cfg, step, {"dataset": data_state, "tokens_seen": step * tokens_per_step,
                                       "tokenizer_hash": tok_hash}))
        last_log_time += time.perf_counter() - t_aside  # tokens/s counts training only
    progress.close()
    if cfg.trace:
        weights = accelerator.unwrap_model(model).state_dict()
        _trace(cfg, rank, {"step": step, "weights": _digest(*(weights[k] for k in sorted(weights)))})

    if cfg.export:
        summary["export_dir"] = str(export_model(accelerator, model, tokenizer, cfg))
    # All ranks leave together: a rank that destroys the process group and exits first takes the rendezvous
    # store with it, and a slower rank's own teardown could then wait on it forever.
    accelerator.wait_for_everyone()
    accelerator.end_training()
    summary.update(steps=step, tokens_seen=step * tokens_per_step,
                   step_time_s=statistics.median(step_times[1:] or step_times) if step_times else None,
                   final_val_loss=summary["evals"][-1]["val_loss"] if summary["evals"] else None)
    return summary


def export_model(accelerator: Accelerator, model: torch.nn.Module, tokenizer, cfg: TrainConfig) -> Path:
    """Save model + tokenizer + resolved config in Hugging Face format to output_dir/final, atomically."""
    final = Path(cfg.output_dir) / EXPORT_DIR
    state_dict = accelerator.get_state_dict(model)  # gathers FSDP shards; every rank must call it
    if accelerator.is_main_process:
        tmp = staging_dir(final)
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.config.use_cache = True  # gradient checkpointing turned it off for training
        with _quiet_progress():
            unwrapped.save_pretrained(tmp, state_dict=state_dict)
        tokenizer.save_pretrained(tmp)
        (tmp / "training_config.json").write_text(json.dumps(to_dict(cfg), indent=2) + "\n")
        publish_dir(tmp, final)
    accelerator.wait_for_everyone()
    return final


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No "Writing model shards" progress bar from transformers for a one-file save."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _digest(*tensors: torch.Tensor) -> str:
    """Short content hash of tensors (their raw bytes, in order)."""
    h = hashlib.blake2b(digest_size=8)
    for t in tensors:
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _trace(cfg: TrainConfig, rank: int, record: dict[str, Any]) -> None:
    path = Path(cfg.output_dir) / "trace" / f"rank-{rank}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def _tracker_config(cfg: TrainConfig) -> dict[str, Any]:
    """The config as scalars, which TensorBoard's hparams accept (lists joined, None as a string)."""
    out = {}
    for key, value in to_dict(cfg).items():
        if isinstance(value, list):
            value = ",".join(value)
        out[key] = "none" if value is None else value
    return out
