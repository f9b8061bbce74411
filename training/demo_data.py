"""A small real corpus for tests, benchmarks and the CPU demo: the local Python sources, tokenized and packed.

The full pipeline (`cp-preprocess run`) is the way to build training data; this shortcut trains a small
byte-level BPE on the running interpreter's own standard library and packs it straight into shards.
"""

from __future__ import annotations

import sysconfig
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from common.tokens import EOS_TOKEN
from shards.packing import SamplePacker
from shards import ShardWriter, tokenizer_hash


def python_sources(limit_bytes: int, skip: int = 0) -> Iterator[str]:
    """Texts of the standard library's .py files in sorted path order, after `skip` files, up to limit_bytes."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    total = 0
    for path in sorted(stdlib.glob("*.py"))[skip:]:
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        yield text
        total += len(text)
        if total >= limit_bytes:
            return


def train_tokenizer(out_dir: str | Path, vocab_size: int = 2000, corpus_bytes: int = 2 << 20) -> Path:
    """Train a byte-level BPE with the <|endoftext|> special and save it as a Hugging Face tokenizer dir."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(python_sources(corpus_bytes), vocab_size=vocab_size, min_frequency=2,
                            special_tokens=[EOS_TOKEN])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN)
    out_dir = Path(out_dir)
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def pack_sources(tokenizer_dir: str | Path, out_dir: str | Path, seq_length: int, texts: Iterator[str]) -> int:
    """Tokenize texts, join them with <|endoftext|>, cut into seq_length samples and write shards;
    returns the number of samples."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tokenizer_dir))
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    with ShardWriter(out_dir, seq_length=seq_length, vocab_size=len(tokenizer),
                     tokenizer_hash=tokenizer_hash(tokenizer_dir)) as writer:
        packer = SamplePacker(writer, seq_length)
        for text in texts:
            packer.add(np.asarray([*tokenizer(text)["input_ids"], eos_id]))
        packer.finish()
    return packer.samples


def build_demo_run(run_dir: str | Path, seq_length: int = 128, vocab_size: int = 2000,
                   train_bytes: int = 1 << 20, valid_bytes: int = 128 << 10, corpus_bytes: int = 2 << 20) -> Path:
    """RUN/tokenizer (trained on ``corpus_bytes``) and RUN/shards/{train,valid} from the standard library
    (valid = files after train's)."""
    run_dir = Path(run_dir)
    tok_dir = train_tokenizer(run_dir / "tokenizer", vocab_size=vocab_size, corpus_bytes=corpus_bytes)
    train_texts = list(python_sources(train_bytes))
    pack_sources(tok_dir, run_dir / "shards" / "train", seq_length, iter(train_texts))
    pack_sources(tok_dir, run_dir / "shards" / "valid", seq_length,
                 python_sources(valid_bytes, skip=len(train_texts)))
    return run_dir
