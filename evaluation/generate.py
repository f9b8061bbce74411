"""Completions of benchmark prompts from a trained model directory (the trainer's Hugging Face export)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluation.config import HumanEvalConfig
from evaluation.problems import Problem
from training.generate import truncate_at_stop


class ModelError(ValueError):
    """A model directory that cannot be used for generation."""


@dataclass(frozen=True)
class Completions:
    """The samples of one problem, and whether its prompt had to be cut to fit the model's context."""

    task_id: str
    texts: list[str]
    prompt_truncated: bool


def training_added_eos(model_dir: Path) -> bool | None:
    """Whether the model's training data put EOS between files (pack's add_eos), if the export tells."""
    try:
        train_cfg = json.loads((model_dir / "training_config.json").read_text())
        index = json.loads((Path(train_cfg["data_dir"]) / "train" / "index.json").read_text())
        return bool(index["add_eos"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_model_dir(model_dir: str | Path) -> None:
    """Fail fast, before the weights are read, unless ``model_dir`` holds a causal language model's config."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    path = Path(model_dir)
    if not (path / "config.json").is_file():
        raise ModelError(f"{path}: no config.json; pass the exported model directory (OUTPUT_DIR/final)")
    try:
        config = AutoConfig.from_pretrained(str(path))
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(f"{path}: unreadable model config ({_first_line(exc)})") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelError(f"{path}: not a causal language model (model_type {config.model_type!r})")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_model(model_dir: str | Path, device: str | None = None):
    """(model, tokenizer, device) from an exported directory; bf16 on a GPU that supports it."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = Path(model_dir)
    check_model_dir(path)
    hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path))
        tokenizer = AutoTokenizer.from_pretrained(str(path))
    except (ValueError, OSError, KeyError) as exc:
        raise ModelError(f"{path}: cannot load the model and its tokenizer ({_first_line(exc)})") from None
    if tokenizer.eos_token_id is None:
        raise ModelError(f"{path}: the tokenizer has no EOS token (needed to pad and to prepend)")
    if device is None:
        from evaluation.humaneval import process_state

        device = str(process_state().device)
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        model = model.to(torch.bfloat16)
    model.to(device).eval()
    return model, tokenizer, device


def generate_completions(model_dir: str | Path, problems: Sequence[Problem], cfg: HumanEvalConfig,
                         indices: Sequence[int] | None = None,
                         progress: Callable[[int], None] | None = None) -> list[Completions]:
    """``cfg.n_samples`` completions of each problem (of ``problems[i]`` for i in ``indices``), cut at the
    first stop sequence. Problem i's batch j is seeded from (seed, i, j), so a split across processes
    gives each problem the completions it gets in one process."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    model_dir = Path(model_dir)
    model, tokenizer, device = load_model(model_dir, cfg.device)
    prepend = cfg.prepend_eos
    if prepend is None:
        prepend = training_added_eos(model_dir) is not False
    context = _context_length(model.config, tokenizer)
    new_tokens = min(cfg.max_new_tokens, context // 2)
    stop = cfg.stop_sequences

    class StopOnSequences(StoppingCriteria):
        """Per sequence: done once its generated text holds a stop sequence (CodeParrot's criterion)."""

        def __init__(self, start: int) -> None:
            self.start = start

        def __call__(self, input_ids, scores, **kwargs):
            texts = tokenizer.batch_decode(input_ids[:, self.start:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in stop) for t in texts], device=input_ids.device)

    sampling = (dict(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p) if cfg.temperature > 0
                else dict(do_sample=False))
    results = []
    for i in (range(len(problems)) if indices is None else indices):
        problem = problems[i]
        prompt = problem.prompt.strip() if cfg.strip_prompt else problem.prompt
        ids = tokenizer(prompt)["input_ids"]
        keep = context - new_tokens
        truncated = len(ids) + int(prepend) > keep
        ids = ids[-keep:] if truncated else ([tokenizer.eos_token_id] if prepend else []) + ids
        inputs = torch.tensor([ids], device=device)
        texts: list[str] = []
        for j, start in enumerate(range(0, cfg.n_samples, cfg.batch_size)):
            count = min(cfg.batch_size, cfg.n_samples - start)
            torch.manual_seed(_seed(cfg.seed, i, j))
            with torch.no_grad():
                out = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs),
                                     max_new_tokens=new_tokens, num_return_sequences=count,
                                     pad_token_id=tokenizer.eos_token_id,
                                     stopping_criteria=StoppingCriteriaList([StopOnSequences(len(ids))]),
                                     **sampling)
            decoded = tokenizer.batch_decode(out[:, len(ids):], skip_special_tokens=True)
            texts.extend(truncate_at_stop(t, stop) for t in decoded)
        results.append(Completions(problem.task_id, texts, truncated))
        if progress is not None:
            progress(1)
    return results


def _context_length(config, tokenizer) -> int:
    """The model's context in tokens (GPT-2: n_positions; most others: max_position_embeddings)."""
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 1:
            return value
    if isinstance(tokenizer.model_max_length, int) and 1 < tokenizer.model_max_length < 1 << 20:
        return tokenizer.model_max_length
    raise ModelError("the model's config names no context length (n_positions / max_position_embeddings)")


def _seed(seed: int, problem: int, batch: int) -> int:
    return (seed * 1_000_003 + problem) * 10_007 + batch
