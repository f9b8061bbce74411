"""The Accelerate GPT-2 trainer over packed token shards: `train(cfg)` and its config."""

from training.config import ConfigError, TrainConfig, load_train_config

__all__ = ["ConfigError", "TrainConfig", "load_train_config", "train"]


def train(cfg: TrainConfig) -> dict:
    """Train per cfg and return the run summary (see training.trainer.train)."""
    from training.trainer import train as _train  # torch/transformers load only when training

    return _train(cfg)
