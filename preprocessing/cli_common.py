"""What every `cp-preprocess` command shares: the default run directory and one-line errors."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click

# The commands never multiply matrices, so numpy's OpenBLAS need not start a thread per core when
# numpy is imported: that costs every process ~0.1 s of CPU on 2 cores (more on big machines).
# Set before any command module imports numpy; a value the user set wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

DEFAULT_RUN = "runs/default"


def clean_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the toolkit's own errors (bad config, unreadable input, bad shards) into one line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (ValueError, OSError) as exc:  # ConfigError, InputError, ShardError are ValueErrors
            if isinstance(exc, OSError) and not getattr(exc, "filename", None):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


def resolve_run_dir(run_dir: str | None, inputs: tuple[str, ...], output: str | None) -> str | None:
    """The RUN a stage command works in: the default one when neither RUN nor --input is given;
    with --input and no RUN, an --output directory is required."""
    if run_dir is None and not inputs:
        return DEFAULT_RUN
    if run_dir is None and output is None:
        raise click.UsageError("with --input, give a RUN directory or --output")
    return run_dir


def stage_config(cls: type, config_path: str | None, overrides: dict[str, Any], section: str,
                 dry_run: bool) -> Any:
    """The stage's config (dataclass defaults <- preset section <- CLI flags); with ``--dry-run``
    it is printed as JSON and None is returned, so the command stops there."""
    import json

    from preprocessing.config import load_config, to_dict

    cfg = load_config(cls, config_path, overrides, section=section)
    if dry_run:
        click.echo(json.dumps(to_dict(cfg), indent=2, default=str))
        return None
    return cfg
