"""The GPT-2 code model, built from the config and the tokenizer (never downloaded), and its FLOP count."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from common.tokens import EOS_TOKEN
from training.config import TrainConfig

# Dense bf16 tensor-core peak FLOP/s of one device, keyed by a substring of torch.cuda.get_device_name().
# Checked in order, so more specific names come first. Override with TrainConfig.peak_flops.
PEAK_FLOPS_BF16: tuple[tuple[str, float], ...] = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("GH200", 989e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),  # fp16; V100 has no bf16
    ("T4", 65e12),  # fp16
)


def padded_vocab_size(n_tokens: int, multiple: int = 64) -> int:
    """Round the vocabulary up to a multiple of 64 so the embedding and LM-head matmuls tile well."""
    return -(-n_tokens // multiple) * multiple


def load_tokenizer(tokenizer_dir: str | Path) -> PreTrainedTokenizerFast:
    """Open the run's Hugging Face tokenizer directory; it must define the <|endoftext|> token."""
    path = Path(tokenizer_dir)
    if not (path / "tokenizer.json").is_file():
        raise ValueError(f"tokenizer_dir={path}: no tokenizer.json there; point tokenizer_dir at the "
                         f"directory written by `cp-preprocess tokenizer` (RUN/tokenizer)")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path))
    if EOS_TOKEN not in tokenizer.get_vocab():
        raise ValueError(f"tokenizer_dir={path}: the tokenizer has no {EOS_TOKEN} token; rebuild it with "
                         f"`cp-preprocess tokenizer`")
    return tokenizer


def build_model(cfg: TrainConfig, tokenizer: PreTrainedTokenizerFast) -> GPT2LMHeadModel:
    """A freshly initialised GPT-2 with PyTorch SDPA attention, sized by cfg and the tokenizer."""
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    config = GPT2Config(
        vocab_size=padded_vocab_size(len(tokenizer)),
        n_positions=cfg.seq_length,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        resid_pdrop=cfg.dropout,
        embd_pdrop=cfg.dropout,
        attn_pdrop=cfg.dropout,
        initializer_range=cfg.init_std,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        attn_implementation="sdpa",
    )
    model = GPT2LMHeadModel(config)
    model.loss_type = "ForCausalLM"  # transformers warns when it has to guess the (standard) shifted loss
    if cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 renamed it
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return model


def flops_per_token(model: torch.nn.Module, n_layer: int, n_embd: int, seq_length: int) -> float:
    """Training FLOPs per token, forward + backward: 6N + 12*L*d*T (PaLM appendix B, as in nanoGPT).

    N counts the token embedding (it is also the LM head matmul) but not the position embedding.
    """
    n_params = sum(p.numel() for name, p in model.named_parameters() if "wpe" not in name)
    return 6 * n_params + 12 * n_layer * n_embd * seq_length


def device_peak_flops(device: torch.device, override: float | None = None) -> float | None:
    """Peak FLOP/s of one device: the override, else the table entry for a known GPU, else None (CPU)."""
    if override is not None:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in PEAK_FLOPS_BF16:
        if key in name:
            return peak
    return None
