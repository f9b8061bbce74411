"""The learning-rate schedule and AdamW parameter groups."""

from __future__ import annotations

import math

import torch

from training.config import TrainConfig
from training.optim import build_optimizer, get_lr


def test_warmup_then_cosine_to_floor():
    cfg = TrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    lrs = [get_lr(s, cfg) for s in range(120)]
    assert lrs[0] == 1e-4 and math.isclose(lrs[9], 1e-3)  # linear warm-up reaches the peak
    assert all(a >= b for a, b in zip(lrs[9:-1], lrs[10:], strict=True))  # then never increases
    assert math.isclose(lrs[60], (1e-3 + 1e-4) / 2)  # cosine midpoint
    assert math.isclose(lrs[110], 1e-4) and lrs[119] == 1e-4  # floor at and after max_steps


def test_weight_decay_only_on_matrices():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=1, n_head=2))
    opt = build_optimizer(model, TrainConfig(weight_decay=0.1), torch.device("cpu"))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() == 1 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))  # tied lm_head once
