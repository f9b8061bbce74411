"""run_stage: the one stage lifecycle (manifest check, skip, refuse, --force, staging, publishing)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from common.config import to_dict
from preprocessing.executors import Executor, ExecutorConfig, make_executor
from preprocessing.executors.base import keep_freed_memory
from common.io import (
    check_visible,
    is_complete,
    join,
    publish_dir,
    read_json,
    remove_tree,
    staging_dir,
    write_json_atomic,
)
from preprocessing.runner.manifest import RunManifest
from preprocessing.runner.stage import Follower, Stage

ExecutorSpec = Executor | ExecutorConfig | int | None
"""An executor, its config, or a worker count on the local executor (None: one worker)."""


class _Lifecycle:
    """One stage's manifest entry and directories in one run (no manifest without a run dir)."""

    def __init__(self, stage: Stage, run_dir: str | Path | None, force: bool):
        self.stage, self.force = stage, force
        self.manifest = RunManifest(run_dir) if run_dir is not None and stage.recorded else None
        self.identity = stage.identity() if stage.recorded else {}
        self.fingerprint = ""

    def check(self) -> None:
        """Refuse to write into a run that holds this stage's outputs of another config (unless force)."""
        if self.manifest is not None:
            self.manifest.check(self.stage.name, self.identity, force=self.force)

    def finished(self) -> dict[str, Any] | None:
        """The stats of a finished run of the same config and input (``skipped: true``), or None."""
        if self.manifest is None:
            return None  # no run directory: nothing to skip, nothing to record
        self.fingerprint = self.stage.fingerprint()
        if self.force or not is_complete(self.stage.out_dir) \
                or not self.manifest.is_done(self.stage.name, self.identity, self.fingerprint):
            return None
        try:
            stats = read_json(join(self.stage.out_dir, "stats.json"))
        except FileNotFoundError:
            return None
        stats["skipped"] = True
        return stats

    def start(self, fingerprint: str | None = None) -> Path:
        """Mark started (a kill leaves it unfinished) and return the empty staging directory."""
        if self.manifest is not None:
            self.manifest.mark_started(self.stage.name, self.identity,
                                       self.fingerprint if fingerprint is None else fingerprint)
        if not self.stage.recorded:
            return self.stage.out_dir  # the stage writes its files atomically there itself
        return staging_dir(self.stage.out_dir)

    def publish(self, out: Path, stats: dict[str, Any], executor: Executor, started: float) -> dict[str, Any]:
        """Complete the stats envelope, write stats.json, rename the staging dir, mark done."""
        if not self.stage.recorded:
            return stats
        stats.setdefault("format_version", 1)
        stats.setdefault("stage", self.stage.name)
        stats.setdefault("workers", executor.workers)
        stats.setdefault("wall_time_s", round(time.perf_counter() - started, 3))
        stats.setdefault("config", to_dict(getattr(self.stage, "cfg", None)))
        write_json_atomic(out / "stats.json", stats)
        publish_dir(out, self.stage.out_dir)
        if self.manifest is not None:
            if not self.fingerprint:  # a follower's input exists only now
                self.fingerprint = self.stage.fingerprint()
            self.manifest.mark_done(self.stage.name, self.identity, self.fingerprint,
                                    outputs=[str(join(self.stage.out_dir, o)) for o in self.stage.outputs(stats)],
                                    wall_time_s=stats["wall_time_s"], executor=executor.name)
        return stats

    def abandon(self, out: Path) -> None:
        if self.stage.recorded:
            remove_tree(out)


def run_stage(stage: Stage, run_dir: str | Path | None = None, executor: ExecutorSpec = None,
              force: bool = False) -> dict[str, Any]:
    """Run ``stage`` into its out_dir, recorded in RUN/manifest.json when ``run_dir`` is given.

    A finished stage with the same config and input is skipped (its stats come back with
    ``skipped: true``) unless ``force``; a run holding the stage's outputs of another config is
    refused unless ``force``. The outputs are built in a staging directory next to out_dir and
    renamed into place with their stats.json when complete: a killed run leaves nothing under a
    final name, and its re-run builds the same bytes again. The executor (``--executor``,
    ``--workers``) changes how fast, never what.
    """
    keep_freed_memory()  # (in this process, the driver; the workers as their first task arrives)
    ex, owned = make_executor(executor)
    try:
        check_visible(stage.worker_inputs(), ex.workers, ex.name)
        life = _Lifecycle(stage, run_dir, force)
        life.check()
        done = life.finished()
        if done is not None:
            return done
        started = time.perf_counter()
        out = life.start()
        try:
            stats = stage.run(ex, out)
        except BaseException:
            life.abandon(out)
            raise
        return life.publish(out, stats, ex, started)
    finally:
        if owned:
            ex.close()


def run_fused(first: Stage, second: Stage, follower: Follower, run_dir: str | Path,
              executor: ExecutorSpec = None, force: bool = False) -> dict[str, dict[str, Any]]:
    """``first`` then ``second`` with ONE pass over the input: ``follower`` (``second``'s fused form)
    sees ``first``'s pass and finishes after ``first`` is published; both are recorded as if run
    one after the other, with the same bytes. If ``first`` is already done, ``second`` runs alone."""
    keep_freed_memory()  # (in this process, the driver; the workers as their first task arrives)
    ex, owned = make_executor(executor)
    try:
        check_visible([*first.worker_inputs(), *second.worker_inputs()], ex.workers, ex.name)
        a, b = _Lifecycle(first, run_dir, force), _Lifecycle(second, run_dir, force)
        a.check()
        b.check()  # refuse before the first stage writes anything
        done = a.finished()
        if done is not None:
            return {first.name: done, second.name: run_stage(second, run_dir, ex, force)}
        started = time.perf_counter()
        out_a = a.start()
        out_b = b.start(fingerprint="")  # never matches: a run killed before the end is not done
        try:
            follower.start(out_b, ex)
            stats_a = first.run(ex, out_a)
            a.publish(out_a, stats_a, ex, started)
            stats_b = follower.finish(ex, out_b)
            b.publish(out_b, stats_b, ex, started)
        except BaseException:
            a.abandon(out_a)
            b.abandon(out_b)
            raise
        finally:
            follower.close()
        return {first.name: stats_a, second.name: stats_b}
    finally:
        if owned:
            ex.close()
