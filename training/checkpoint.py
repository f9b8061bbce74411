"""Resumable checkpoints: Accelerate state + trainer_state.json, written atomically, last K kept."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from accelerate import Accelerator

from training.config import TrainConfig, to_dict

STATE_FILE = "trainer_state.json"
STATE_VERSION = 1
_NAME = re.compile(r"^step-(\d{8})$")

# Config keys that define a run: resuming with any of them changed would not continue the same run.
RUN_IDENTITY_KEYS = ("n_layer", "n_head", "n_embd", "seq_length", "global_batch_size", "seed")


def checkpoints_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of output_dir, oldest first (temporary directories are not listed)."""
    root = checkpoints_root(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _NAME.match(p.name)]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def save_checkpoint(accelerator: Accelerator, cfg: TrainConfig, step: int, state: dict[str, Any]) -> Path:
    """Save model, optimizer and RNG (Accelerate) plus `state` to checkpoints/step-NNNNNNNN.

    Everything goes to a temporary directory that the main process renames when complete, so a crash
    never leaves a half-written checkpoint under a final name. Checkpoints beyond keep_last are deleted.
    Assumes output_dir is on a file system shared by all processes (as multi-node setups have).
    """
    root = checkpoints_root(cfg.output_dir)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}"
    if final.exists():  # e.g. the end of a resumed run that had already been saved at this step
        return final
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    # GPT-2 ties lm_head to the token embedding; safetensors stores it once and Accelerate logs a warning
    # about it on every save. Expected here, so it is silenced for the call.
    quiet = logging.getLogger("accelerate.utils.other")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        accelerator.save_state(str(tmp))
    finally:
        quiet.setLevel(level)
    if accelerator.is_main_process:
        payload = {"version": STATE_VERSION, "step": step, "config": to_dict(cfg), **state}
        (tmp / STATE_FILE).write_text(json.dumps(payload, indent=2) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        os.replace(tmp, final)
        for old in list_checkpoints(cfg.output_dir)[:-cfg.keep_last]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def read_state(path: Path) -> dict[str, Any]:
    """The trainer_state.json of a checkpoint directory, or a ValueError saying what is wrong."""
    if not path.is_dir():
        raise ValueError(f"resume={path}: no such checkpoint directory; use resume=auto or a path under "
                         f"OUTPUT_DIR/checkpoints/")
    try:
        state = json.loads((path / STATE_FILE).read_text())
        int(state["step"]), dict(state["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a complete checkpoint ({STATE_FILE} unreadable: {exc}); delete it or "
                         f"resume from an earlier one with resume=PATH") from None
    return state


def find_resume_checkpoint(cfg: TrainConfig) -> Path | None:
    """The checkpoint to continue from, per cfg.resume, or None for a fresh run; refuses foreign runs."""
    existing = list_checkpoints(cfg.output_dir)
    if cfg.resume == "none":
        if existing:
            raise ValueError(f"output_dir={cfg.output_dir} already holds checkpoints ({existing[-1].name}); "
                             f"use resume=auto to continue that run or choose another output_dir")
        return None
    if cfg.resume == "auto":
        return existing[-1] if existing else None
    return Path(cfg.resume)


def check_same_run(state: dict[str, Any], cfg: TrainConfig, path: Path, tokenizer_hash: str) -> None:
    """Refuse to continue a checkpoint whose run-defining settings or tokenizer differ from cfg's."""
    saved = state["config"]
    diff = [f"{k}: checkpoint {saved.get(k)!r} vs config {getattr(cfg, k)!r}"
            for k in RUN_IDENTITY_KEYS if saved.get(k) != getattr(cfg, k)]
    if state.get("tokenizer_hash", tokenizer_hash) != tokenizer_hash:
        diff.append(f"tokenizer: checkpoint {state['tokenizer_hash'][:19]} vs "
                    f"{cfg.tokenizer_dir} {tokenizer_hash[:19]}")
    if diff:
        raise ValueError(f"{path} belongs to another run ({'; '.join(diff)}); choose another output_dir "
                         f"or set these keys back")


def load_checkpoint(accelerator: Accelerator, path: Path, cfg: TrainConfig,
                    tokenizer_hash: str) -> dict[str, Any]:
    """Restore model, optimizer and RNG from `path` and return its trainer state."""
    state = read_state(path)
    check_same_run(state, cfg, path, tokenizer_hash)
    try:
        accelerator.load_state(str(path))
    except Exception as exc:  # any failure here means the files are damaged or incomplete
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ValueError(f"{path}: checkpoint could not be loaded ({type(exc).__name__}: {first}); delete it "
                         f"or resume from an earlier one with resume=PATH") from None
    return state
