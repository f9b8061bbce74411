"""What every `cp-preprocess` command shares: the default run directory and one-line errors."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from preprocessing.executors.pool import WorkerDied

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
        except (ValueError, OSError, WorkerDied) as exc:  # ConfigError, InputError, ShardError are ValueErrors
            if isinstance(exc, OSError) and not getattr(exc, "filename", None):
                raise
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


@contextlib.contextmanager
def frozen_imports() -> Iterator[None]:
    """Around a command's imports of the library (numpy, a stage): the cyclic collector paused
    while they run, and then everything they made (modules, classes, functions: alive until the
    process exits) put in its permanent generation (gc.freeze) until the command ends, so that no
    collection traverses them: ~15 ms of the imports' own collections in a 2 s `dedup` run
    (docs/benchmarks.md). Objects made later are collected as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.call_on_close(gc.unfreeze)  # (a process that runs several commands frees them as usual)
        else:
            gc.unfreeze()
        if enabled:
            gc.enable()


def resolve_run_dir(run_dir: str | None, inputs: tuple[str, ...], output: str | None) -> str | None:
    """The RUN a stage command works in: the default one when neither RUN nor --input is given;
    with --input and no RUN, an --output directory is required."""
    if run_dir is None and not inputs:
        return DEFAULT_RUN
    if run_dir is None and output is None:
        raise click.UsageError("with --input, give a RUN directory or --output")
    return run_dir


def executor_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--workers, --executor, --ray-address, --partitions and --force: the same meaning on every command."""
    options = [
        click.option("--workers", type=int, help="Parallel workers (processes, Ray CPUs, trainer threads); "
                                                  "the output is identical for any number."),
        click.option("--executor", type=click.Choice(["local", "ray"]),
                     help="Where the work units run: local processes (default) or Ray."),
        click.option("--ray-address", help="An existing Ray cluster (host:port, ray://host:port, auto); "
                                           "default: a local Ray for the run."),
        click.option("--partitions", type=int,
                     help="Partition tasks for the global state (exact-dedup table, LSH buckets); 0: in the driver. "
                          "Default: 0 locally, --workers on Ray."),
        click.option("--force", is_flag=True, help="Re-run a finished stage, and overwrite outputs of another config."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def executor_config(config_path: str | None, workers: int | None, executor: str | None,
                    ray_address: str | None, partitions: int | None = None) -> Any:
    """The ExecutorConfig: defaults <- the preset's `executor:` section <- the flags."""
    from common.config import load_config
    from preprocessing.executors import ExecutorConfig

    overrides = {"workers": workers, "executor": executor, "ray_address": ray_address, "partitions": partitions}
    if ray_address is not None and executor is None:
        overrides["executor"] = "ray"  # an address only means something to Ray
    return load_config(ExecutorConfig, config_path, overrides, section="executor")


def stage_config(cls: type, config_path: str | None, overrides: dict[str, Any], section: str,
                 dry_run: bool, executor: Any = None) -> Any:
    """The stage's config (dataclass defaults <- preset section <- CLI flags); with ``--dry-run``
    it is printed as JSON (with the ``executor`` section) and None is returned, so the command stops there."""
    import json

    from common.config import load_config, to_dict

    cfg = load_config(cls, config_path, overrides, section=section)
    if dry_run:
        shown = to_dict(cfg) if executor is None else {**to_dict(cfg), "executor": to_dict(executor)}
        click.echo(json.dumps(shown, indent=2, default=str))
        return None
    return cfg
