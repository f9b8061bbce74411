"""The tokenizer's contract with the packer, the shards and the trainer: its special tokens and where
its tokenizer.json lies."""

from __future__ import annotations

import os
from pathlib import Path

EOS_TOKEN = "<|endoftext|>"
# SantaCoder / StarCoder fill-in-the-middle tokens (prefix, middle, suffix, padding).
FIM_TOKENS = ("<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>")


def find_tokenizer_json(path: str | os.PathLike) -> Path | None:
    """The tokenizer.json that ``path`` names (the file itself, or the one in the directory it
    names), or None when there is none. Each caller words its own error."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    return p if p.is_file() else None
