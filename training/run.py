"""Entry point: `accelerate launch training/run.py --config configs/training/tiny.yaml [key=value ...]`."""

from __future__ import annotations

import argparse
import json
import sys
import typing
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from training.config import ConfigError, TrainConfig, load_train_config, to_dict  # noqa: E402

LIST_KEYS = {name for name, tp in typing.get_type_hints(TrainConfig).items() if typing.get_origin(tp) is list}


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn `key=value`, `--key value` and `--key=value` into a dict; values are read as YAML scalars."""
    out: dict[str, Any] = {}
    i = 0
    while i < len(items):
        item = items[i]
        if item.startswith("--"):
            item = item[2:]
            if "=" not in item:
                if i + 1 >= len(items):
                    raise ConfigError(f"--{item}: missing value")
                item = f"{item}={items[i + 1]}"
                i += 1
        if "=" not in item:
            raise ConfigError(f"{item!r}: expected key=value or --key value")
        key, value = item.split("=", 1)
        key = key.replace("-", "_")
        if key in LIST_KEYS:  # trackers=tensorboard,wandb (or trackers= for none)
            out[key] = [v for v in value.split(",") if v]
        else:
            try:
                out[key] = yaml.safe_load(value) if value else ""
            except yaml.YAMLError:
                out[key] = value
        i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,  # `--con ...` must not silently become --config
        description="Train a GPT-2 code model on packed token shards.",
        epilog="Any config key can be overridden: key=value or --key value (e.g. max_steps=100 --resume auto).")
    parser.add_argument("--config", help="YAML preset, e.g. configs/training/tiny.yaml")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    args, rest = parser.parse_known_args(argv)
    try:
        cfg = load_train_config(args.config, parse_overrides(rest))
        if args.dry_run:
            print(json.dumps(to_dict(cfg), indent=2))
            return 0
        from training.trainer import train

        summary = train(cfg)
    except ValueError as exc:  # ConfigError, ShardError and every input check are ValueErrors
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if summary["rank"] != 0:
        return 0
    final = summary.get("final_val_loss")
    print(f"done: {summary['steps']} steps, {summary['tokens_seen']} tokens"
          + (f", val_loss {final:.4f}" if final is not None else "")
          + (f", model in {summary['export_dir']}" if "export_dir" in summary else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
