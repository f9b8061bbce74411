"""The stage contract: what a stage tells the runner, and what the runner does for every stage."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from preprocessing.executors import Executor


class Stage:
    """One stage of the pipeline as the runner sees it.

    A stage is one or more passes of ``units -> executor.map(map, units, context) -> reduce``,
    written in :meth:`run`: the units are cheap picklable descriptions of where the bytes are,
    the map is a pure function of (context, unit) that runs in any process, the reduce (exact
    dedup table, LSH index, writers, stats merge) runs here, in unit order. Everything around it
    (manifest, skip, refuse, force, staging and publishing, the stats envelope) is
    :func:`preprocessing.runner.run_stage`'s, written once.
    """

    name: str = "stage"
    """The stage's key in RUN/manifest.json and its stats' "stage"."""
    out_dir: Path | str
    """The directory the stage publishes: a local Path, or a URL (built in a local staging directory
    and published by :func:`common.io.publish_dir`: renamed, or uploaded then marked complete)."""
    recorded: bool = True
    """False for a view of other stages' outputs (the report): never skipped nor recorded in the
    manifest, no stats.json; it writes each of its files atomically into out_dir itself."""

    def identity(self) -> dict[str, Any]:
        """The config identity in the manifest: what decides whether outputs may be mixed or reused."""
        raise NotImplementedError

    def fingerprint(self) -> str:
        """The input's fingerprint (names, sizes, mtimes): a changed input re-runs a finished stage."""
        raise NotImplementedError

    def worker_inputs(self) -> list[str]:
        """The paths or URLs (patterns as given) that the map's workers open themselves: the runner
        refuses, before any work, to send workers to one they cannot see (``memory://``)."""
        return []

    def run(self, executor: Executor, out: Path) -> dict[str, Any]:
        """Run the passes, writing into ``out`` (the staging directory); returns the stats dict."""
        raise NotImplementedError

    def outputs(self, stats: dict[str, Any]) -> list[str]:
        """The names, under out_dir, that the manifest lists as the stage's outputs."""
        return list(stats.get("outputs", []))


class Follower:
    """A stage fused into another's pass (near-dedup's pass 1 inside `stream`): it sees the first
    stage's map results in unit order, and finishes after the first stage is published."""

    def start(self, out: Path, executor: Executor | None = None) -> None:
        """Before the first stage's pass; ``out`` is this stage's staging directory, ``executor``
        the one both stages run on."""

    def finish(self, executor: Executor, out: Path) -> dict[str, Any]:
        """After the first stage is published: the rest of this stage, into ``out``; its stats."""
        raise NotImplementedError

    def close(self) -> None:
        """Always, also after a failure: release work files."""
