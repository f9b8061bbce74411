"""TrainConfig: every setting of a training run, loaded strictly from a YAML preset plus overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.config import ConfigError, load_config, to_dict

__all__ = ["ConfigError", "TrainConfig", "load_train_config", "to_dict"]

KNOWN_TRACKERS = ("tensorboard", "wandb")


@dataclass
class TrainConfig:
    """One training run: data, model shape, optimisation, evaluation, checkpoints and logging."""

    # --- where things are -------------------------------------------------------------------
    data_dir: str = "RUN/shards"
    """Directory holding the packed token shards, with `train/` and `valid/` inside (cp-preprocess pack)."""
    tokenizer_dir: str = "RUN/tokenizer"
    """Hugging Face tokenizer directory the shards were built with; its vocabulary sizes the model."""
    output_dir: str = "runs/tiny"
    """Run directory: checkpoints/, logs/, metrics.jsonl and the exported model in final/."""
    data_cache_dir: str | None = None
    """Where a data_dir or tokenizer_dir given by URL (s3://, gs://, hf://) is copied before
    training (checked, once; the reader needs local random access). None: output_dir/data-cache."""
    run_name: str = "codeparrot"
    """Project name given to the trackers (TensorBoard sub-directory, W&B project)."""

    # --- model (GPT-2) ----------------------------------------------------------------------
    n_layer: int = 2
    """Number of transformer blocks."""
    n_head: int = 4
    """Attention heads per block; must divide n_embd."""
    n_embd: int = 128
    """Width of the residual stream."""
    seq_length: int = 128
    """Tokens per sample; must equal the shards' seq_length (also the model's n_positions)."""
    dropout: float = 0.0
    """Dropout on embeddings, attention and residuals (GPT-2 used 0.1; 0 is usual for one-epoch runs)."""
    init_std: float = 0.02
    """Standard deviation of the normal weight initialisation (GPT-2's initializer_range)."""

    # --- batch ------------------------------------------------------------------------------
    global_batch_size: int = 16
    """Samples per optimizer step, over all processes (tokens per step = this x seq_length)."""
    micro_batch_size: int = 8
    """Samples per forward pass on one process; accumulation = global / (world_size x micro)."""

    # --- optimisation -----------------------------------------------------------------------
    lr: float = 1e-3
    """Peak learning rate, reached at the end of warm-up."""
    min_lr: float = 1e-4
    """Floor of the cosine decay, reached at max_steps."""
    warmup_steps: int = 10
    """Steps of linear warm-up from 0 to lr."""
    max_steps: int = 200
    """Optimizer steps of the whole run (the cosine schedule ends here)."""
    weight_decay: float = 0.1
    """AdamW weight decay, applied only to weights with 2 or more dimensions (not biases or norms)."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.95
    """AdamW beta2."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value; 0 disables clipping."""

    # --- evaluation, checkpoints, logging ---------------------------------------------------
    eval_every: int = 50
    """Evaluate every this many steps (and always at the end); 0 evaluates only at the end."""
    eval_batches: int = 4
    """Validation batches of global_batch_size samples, always the first ones of valid/; 0 disables evaluation."""
    save_every: int = 100
    """Save a resumable checkpoint every this many steps (and always at the end); 0 saves only at the end."""
    keep_last: int = 3
    """Number of most recent checkpoints kept on disk; older ones are deleted."""
    resume: str = "auto"
    """'auto' continues from the latest checkpoint in output_dir if any, 'none' requires a fresh output_dir,
    anything else is the path of a checkpoint directory to continue from."""
    log_every: int = 10
    """Log loss, lr, grad norm, tokens/s and MFU every this many steps."""
    trackers: list[str] = field(default_factory=lambda: ["tensorboard"])
    """Accelerate trackers to log to: any of 'tensorboard', 'wandb' (W&B needs `pip install wandb`)."""
    peak_flops: float | None = None
    """Peak FLOP/s of one device for the MFU figure; None looks the device up in a table of known peaks."""
    progress_bar: bool = True
    """Show a progress bar when stderr is a terminal."""
    export: bool = True
    """At the end, save model + tokenizer in Hugging Face format to output_dir/final."""

    # --- runtime ----------------------------------------------------------------------------
    seed: int = 0
    """Seed of the model initialisation, dropout and the data order."""
    num_workers: int = 2
    """DataLoader worker processes per rank reading the shards."""
    compile: bool = False
    """Compile the forward pass with torch.compile."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass to save memory (needed for the 1.5B model)."""
    trace: bool = False
    """Debugging aid: each rank writes a hash of every training sample it consumed, and of its final
    weights, to output_dir/trace/rank-R.jsonl (to check data parallelism: disjoint data, equal weights)."""

    def __post_init__(self) -> None:
        positive = ("n_layer", "n_head", "n_embd", "seq_length", "global_batch_size", "micro_batch_size",
                    "max_steps", "log_every", "keep_last")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be > 0")
        for name in ("warmup_steps", "eval_every", "eval_batches", "save_every", "num_workers", "seed",
                     "weight_decay", "grad_clip", "min_lr", "dropout"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)} must be >= 0")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd={self.n_embd} must be divisible by n_head={self.n_head}")
        if self.global_batch_size % self.micro_batch_size:
            raise ConfigError(f"global_batch_size={self.global_batch_size} must be a multiple of "
                              f"micro_batch_size={self.micro_batch_size}")
        if not 0 < self.lr:
            raise ConfigError(f"lr={self.lr} must be > 0")
        if self.min_lr > self.lr:
            raise ConfigError(f"min_lr={self.min_lr} must be <= lr={self.lr}")
        if not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1):
            raise ConfigError(f"beta1={self.beta1}, beta2={self.beta2} must be in [0, 1)")
        if self.dropout >= 1:
            raise ConfigError(f"dropout={self.dropout} must be < 1")
        bad = [t for t in self.trackers if t not in KNOWN_TRACKERS]
        if bad:
            raise ConfigError(f"trackers: unknown {bad}; use any of {list(KNOWN_TRACKERS)}")
        if self.peak_flops is not None and self.peak_flops <= 0:
            raise ConfigError(f"peak_flops={self.peak_flops} must be > 0 (or null to look it up)")
        if not self.resume:
            raise ConfigError("resume must be 'auto', 'none' or a checkpoint path")

    @property
    def train_dir(self) -> Path:
        return Path(self.data_dir) / "train"

    @property
    def valid_dir(self) -> Path:
        return Path(self.data_dir) / "valid"


def load_train_config(path: str | Path | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults <- the YAML preset (when given) <- overrides; unknown keys and wrong types are ConfigErrors."""
    return load_config(TrainConfig, path, overrides)
