"""The `dedup` stage: near-dedup's lifecycle for the runner (:class:`DedupStage`), its config
identity in the manifest, the entry points (:func:`run_dedup`, :func:`run_near_dedup`) and its
pass 1 fused into `stream` (:class:`StreamNearDedup`).

The two passes' map and reduce functions (sketching units, writing the kept rows and the
clusters file) and the kernels live in :mod:`preprocessing.dedup.near` and beside it; this module
only orders them: pass 1 (map: sketch; reduce: index), clustering, pass 2 (map: rows; reduce: write).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from common.config import to_dict
from common.io import basename, join, published_files, remove_tree
from preprocessing.dedup import near
from preprocessing.dedup.index import NearDedupIndex
from preprocessing.dedup.linespool import LineSpool
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.executors import Executor
from preprocessing.executors.pool import RECORDS_PER_TASK
from preprocessing.readers import InputConfig, JsonlReader, Reader, open_reader
from preprocessing.runner import ExecutorSpec, Follower, Stage, run_stage


class DedupStage(Stage):
    """`dedup` for the runner: pass 1 (map: sketch; reduce: index), clustering, pass 2 (map: rows;
    reduce: write) from ``inputs`` (default RUN/clean) into ``out_dir`` (default RUN/dedup)."""

    name = "dedup"

    def __init__(self, cfg: NearDedupConfig, run_dir: str | Path | None = None,
                 inputs: InputConfig | Reader | None = None, out_dir: str | Path | None = None,
                 limit: int | None = None):
        if run_dir is None and out_dir is None:
            raise ValueError("give a run directory or an output directory for near-dedup")
        if inputs is None and run_dir is None:
            raise ValueError("give input paths (--input) when no run directory is given")
        self.cfg, self.run_dir = cfg, run_dir
        self.inputs = inputs if inputs is not None else clean_input(run_dir)  # type: ignore[arg-type]
        self.limit = self.inputs.limit if isinstance(self.inputs, InputConfig) and limit is None else limit
        self.out_dir = join(out_dir if out_dir is not None else join(run_dir, "dedup"))  # type: ignore[arg-type]
        self._reader = self.inputs if isinstance(self.inputs, Reader) else None

    @property
    def reader(self) -> Reader:
        if self._reader is None:
            if inputs_are_clean(self.inputs, self.run_dir):
                clean = join(self.run_dir, "clean")  # type: ignore[arg-type]
                if not published_files(clean, "part-*.jsonl.zst"):
                    raise ValueError(f"{clean} holds no part-*.jsonl.zst shards: run `cp-preprocess stream` first")
            self._reader = open_reader(self.inputs)  # type: ignore[arg-type]
        return self._reader

    def identity(self) -> dict[str, Any]:
        assert isinstance(self.inputs, InputConfig), "a stage recorded in a run reads an InputConfig"
        return _dedup_identity(self.cfg, self.inputs, self.out_dir)

    def fingerprint(self) -> str:
        return self.reader.fingerprint()

    def worker_inputs(self) -> list[str]:
        source = self.inputs
        return list(source.paths) if isinstance(source, InputConfig) else [str(p) for p in getattr(source, "paths", [])]

    def run(self, executor: Executor, out: Path) -> dict[str, Any]:
        cfg, reader, limit = self.cfg, self.reader, self.limit
        work_dir = out / ".work"
        t0 = time.perf_counter()
        # Pass 1: signatures and band keys, in parallel, appended in input order. Over .zst files
        # of whole-line frames (RUN/clean) the workers read and decompress the frames themselves;
        # any other input is split into units by the driver.
        frames = (isinstance(reader, JsonlReader) and cfg.copy_frames and limit is None
                  and all(basename(p).endswith(".zst") for p in reader.paths))  # known before any work
        if frames:
            try:
                index, lines, rejected = self._pass1(executor, work_dir, near._frame_refs(reader), near._sketch_frame,
                                                     cost=near._frame_cost)
                return self._finish(executor, out, index, lines, rejected, t0)
            except near._NotFrames:
                pass  # (nothing was written but the work dir, which _pass1 removed)
        if near.worker_files(reader, limit):  # a dump of compressed files: each worker reads its own
            index, lines, rejected = self._pass1(executor, work_dir, None, near._file_task, files=True)
            return self._finish(executor, out, index, lines, rejected, t0)
        units = near._units(reader, limit, frames=isinstance(reader, JsonlReader) and cfg.copy_frames)
        spool = None
        if isinstance(reader, JsonlReader):  # lines the driver reads: kept on disk for the workers and pass 2
            spool = LineSpool(work_dir, refs=executor.workers > 1 and executor.local_disk)
            units = spool.record(units, reader)
        index, lines, rejected = self._pass1(executor, work_dir, units,
                                             near._sketch_lines_unit if isinstance(reader, JsonlReader) else near._sketch_unit,
                                             spool=spool)
        return self._finish(executor, out, index, lines, rejected, t0)

    def _pass1(self, executor: Executor, work_dir: Path, units: Iterator[Any] | None, fn: Any, cost: Any = len,
               spool: LineSpool | None = None, files: bool = False
               ) -> tuple[NearDedupIndex, near.LineNotes | None, Counter]:
        """``files``: the workers read the input files themselves (:class:`~preprocessing.dedup.near.FilePlan`;
        its tasks, not ``units``)."""
        rejected: Counter = Counter()
        lines = near.LineNotes(spool_dir=work_dir, line_spool=spool) if isinstance(self.reader, JsonlReader) else None
        if files:
            lines.files = []  # type: ignore[union-attr]
        index = NearDedupIndex(self.cfg, work_dir, executor)
        try:
            spool_dir = None
            if files and executor.local_disk:
                spool_dir = str((work_dir / "files").resolve())
                Path(spool_dir).mkdir(parents=True, exist_ok=True)
            context = near.DedupWorker(self.reader, self.cfg, spool_dir)
            if files:  # a task per file; the last files' units sketched apart, where the spools allow
                plan = near.FilePlan(len(self.reader.paths),
                                     executor.workers if spool_dir is not None and executor.workers > 1 else 0)
                outs = plan.results(executor.map(fn, plan.tasks(), context))
            else:
                outs = executor.map(fn, units, context, batch=RECORDS_PER_TASK, cost=cost)
            for out in outs:
                if out is None:
                    raise near._NotFrames
                for res in out.units if isinstance(out, near.FileSketch) else (out,):
                    for reason, _nbytes in res.rejected:
                        rejected[reason] += 1
                    index.add(res.batch)
                if isinstance(out, near.FileSketch):
                    lines.add_file(out)  # type: ignore[union-attr]
                elif lines is not None:
                    lines.add(out.lines, out.digest, out.frame, out.names, out.bodies, out.ref)
        except BaseException:
            if lines is not None:
                lines.close()
            elif spool is not None:
                spool.close()
            index.close()
            remove_tree(work_dir)
            raise
        return index, lines, rejected

    def _finish(self, executor: Executor, out: Path, index: NearDedupIndex, lines: near.LineNotes | None,
                rejected: Counter, t0: float) -> dict[str, Any]:
        try:
            return near._cluster_and_write(self.cfg, index, self.reader, self.limit, executor, out, lines, rejected, t0)
        finally:
            if lines is not None:
                lines.close()
            index.close()
            remove_tree(out / ".work")


def inputs_are_clean(inputs: Any, run_dir: str | Path | None) -> bool:
    return (run_dir is not None and isinstance(inputs, InputConfig)
            and replace(inputs, strict=False) == clean_input(run_dir))


def run_near_dedup(
    cfg: NearDedupConfig,
    source: InputConfig | Reader,
    out_dir: str | Path,
    executor: ExecutorSpec = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Near-dedup ``source`` into ``out_dir`` (part-*.jsonl.zst, clusters.jsonl.zst, stats.json),
    without a run manifest. Returns the stats dict that is also written to ``out_dir/stats.json``.
    """
    return run_stage(DedupStage(cfg, inputs=source, out_dir=out_dir, limit=limit), None, executor)


def run_dedup(
    cfg: NearDedupConfig,
    run_dir: str | Path | None = None,
    executor: ExecutorSpec = None,
    inputs: InputConfig | None = None,
    out_dir: str | Path | None = None,
    force: bool = False,
    strict: bool | None = None,
) -> dict[str, Any]:
    """The `dedup` stage: RUN/clean -> RUN/dedup (or ``inputs`` -> ``out_dir``), recorded in the manifest.

    The lifecycle is :func:`preprocessing.runner.run_stage`'s: a finished stage with the same
    config and input is skipped (``skipped: true``) unless ``force``; a run directory holding
    dedup outputs of another config is refused unless ``force``. ``strict`` (None: the input
    config's) makes a truncated input file an error.
    """
    if strict is not None and (inputs is not None or run_dir is not None):
        inputs = replace(inputs if inputs is not None else clean_input(run_dir), strict=strict)  # type: ignore[arg-type]
    return run_stage(DedupStage(cfg, run_dir, inputs, out_dir), run_dir, executor, force)


def clean_input(run_dir: str | Path) -> InputConfig:
    """The input of the `dedup` stage of a run: the JSONL shards `stream` wrote to RUN/clean."""
    return InputConfig(paths=[str(join(run_dir, "clean", "part-*.jsonl.zst"))], format="jsonl")


def _dedup_identity(cfg: NearDedupConfig, inputs: InputConfig, out_dir: Path) -> dict[str, Any]:
    """The `dedup` stage's config identity in the manifest (the same for the fused and separate forms)."""
    inputs_identity = {k: v for k, v in to_dict(inputs).items() if k != "strict"}  # changes no output
    return {"near_dedup": to_dict(cfg), "input": inputs_identity, "out_dir": str(out_dir)}


class StreamNearDedup(Follower):
    """Main-process side of near-dedup fused into `stream` (one pass over the input).

    The runner calls :meth:`start` before `stream`'s pass; `stream` calls :meth:`add` for every
    unit's rows in output order with which of them it wrote (the survivors of exact dedup: their
    ordinals are those a separate `dedup` run assigns); :meth:`finish` runs once RUN/clean is
    published (cluster, then pass 2 over RUN/clean into RUN/dedup) and :meth:`close` always.
    Outputs are byte-identical to `stream` followed by `dedup`. Per written row it holds the
    index's state (see :mod:`preprocessing.dedup.index`) plus 1 byte of LINE_* status.
    """

    def __init__(self, stage: DedupStage):
        self.stage = stage
        self.sketcher = near.CleanRowSketcher(stage.cfg, stage.inputs)  # type: ignore[arg-type]
        self._index: NearDedupIndex | None = None
        self._work_dir: Path | None = None

    def start(self, out: Path, executor: Executor | None = None) -> None:
        self._work_dir = out / ".work"
        self._index = NearDedupIndex(self.stage.cfg, self._work_dir, executor)
        self._lines = near.LineNotes(digests=None, spool_dir=self._work_dir)
        self._rejected: Counter = Counter()
        self._t0 = time.perf_counter()

    def add(self, res: near.UnitSketch, written: list[bool]) -> None:
        """Append the rows of one unit that were written (``written[i]`` for row i of ``res``)."""
        assert self._index is not None, "start() first"
        status = np.frombuffer(res.lines, dtype=np.uint8)
        new = np.asarray(written, dtype=bool)
        rejected = status == near.LINE_REJECTED
        kept = new[~rejected]
        self._lines.add(status[new].tobytes(), names=[n for n, w in zip(res.names, kept.tolist()) if w])
        self._index.add(res.batch.take(kept))
        for (reason, _nbytes), w in zip(res.rejected, new[rejected].tolist()):
            if w:
                self._rejected[reason] += 1

    def finish(self, executor: Executor, out: Path) -> dict[str, Any]:
        """Cluster and write RUN/dedup's files into ``out`` from the complete RUN/clean; the stats."""
        assert self._index is not None, "start() first"
        clean = join(self.stage.run_dir, "clean")  # type: ignore[arg-type]
        if not published_files(clean, "part-*.jsonl.zst"):
            raise ValueError(f"{clean} holds no part-*.jsonl.zst shards: `stream` kept no records, "
                             "so there is nothing to near-dedup")
        try:
            return near._cluster_and_write(self.stage.cfg, self._index, self.stage.reader, None, executor, out,
                                      self._lines, self._rejected, self._t0, pass1_in_stream=True)
        finally:
            self.close()  # the work files go before `out` is published

    def close(self) -> None:
        """Delete the work files (also after a failure)."""
        if self._index is not None:
            self._index.close()
            self._index = None
            self._lines.close()
        if self._work_dir is not None:
            remove_tree(self._work_dir)
