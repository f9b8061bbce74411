"""run_stage: one lifecycle for every stage (skip, --force, refuse another config, workers, staging)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from preprocessing.cli import main
from common.config import ConfigError
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.stages.dedup import run_dedup
from preprocessing.stages.pack import PackConfig, run_pack
from preprocessing.readers import InputConfig
from preprocessing.stages.stream import StreamConfig, run_stream
from preprocessing.stages.tokenizer import TokenizerConfig, run_tokenizer

RUN_FACTS = {"wall_time_s", "throughput_mb_s", "pass1_s", "cluster_s", "pass2_s", "peak_rss_mb", "workers",
             "train_time_s", "throughput", "skipped"}


def comparable(stats: dict) -> dict:
    """stats.json without what describes the run rather than the data (timings, worker count),
    input files by name (runs in two directories read their own RUN/clean)."""
    out = {k: v for k, v in stats.items() if k not in RUN_FACTS}
    if "input_files" in out:
        out["input_files"] = [dict(f, file=Path(f["file"]).name) for f in out["input_files"]]
    return out


def tree_bytes(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*"))
            if p.is_file() and p.name != "stats.json"}


def _stream(cfg: dict):
    c = StreamConfig(input=InputConfig(limit=300, include_site_packages=False))
    c.filters.quality.max_line_length = cfg.get("max_line_length", 1000)
    return lambda run, ex, force: run_stream(c, run, force=force, executor=ex)


def _dedup(cfg: dict):
    c = NearDedupConfig(threshold=cfg.get("threshold", 0.85))
    return lambda run, ex, force: run_dedup(c, run, ex, force=force)


def _tokenizer(cfg: dict):
    c = TokenizerConfig(vocab_size=cfg.get("vocab_size", 600), compare_gpt2=False, heldout_fraction=0.2)
    return lambda run, ex, force: run_tokenizer(c, run, force=force, executor=ex)


def _pack(cfg: dict):
    c = PackConfig(seq_length=cfg.get("seq_length", 64), valid_fraction=0.3)
    return lambda run, ex, force: run_pack(c, run, ex, force=force)


# (stage, output dir in RUN, the stage with the base config, another config)
STAGES = [
    ("stream", "clean", _stream, {"max_line_length": 500}),
    ("dedup", "dedup", _dedup, {"threshold": 0.7}),
    ("tokenizer", "tokenizer", _tokenizer, {"vocab_size": 500}),
    ("pack", "shards", _pack, {"seq_length": 32}),
]


@pytest.fixture(scope="module")
def base_run(tmp_path_factory) -> Path:
    """A run of every stage (300 files of this Python installation's standard library)."""
    run = tmp_path_factory.mktemp("lifecycle") / "run"
    for _, _, make, _ in STAGES:
        make({})(run, 1, False)
    return run


@pytest.mark.parametrize("name,out,make,other", STAGES, ids=[s[0] for s in STAGES])
def test_skip_force_refuse_and_workers_on_every_stage(name, out, make, other, base_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(base_run, run)
    expected = tree_bytes(base_run / out)
    stage = make({})

    forced = stage(run, 1, True)  # --force: always re-run, never skipped (the copy's paths differ)
    assert not forced.get("skipped") and tree_bytes(run / out) == expected
    done = stage(run, 1, False)  # finished with this config and input: skipped
    assert done["skipped"] and comparable(done) == comparable(forced)
    again = stage(run, 2, False)  # the worker count is not part of the config: skipped too
    assert again["skipped"]
    assert not stage(run, 1, True).get("skipped")  # --force with the same config re-runs (dedup used to skip)

    with pytest.raises(ConfigError, match="another config"):
        make(other)(run, 1, False)
    assert tree_bytes(run / out) == expected  # refused before anything was written

    two = stage(run, 2, True)  # 2 workers: the same bytes and stats
    assert tree_bytes(run / out) == expected and comparable(two) == comparable(forced)
    assert two["workers"] == 2
    entry = json.loads((run / "manifest.json").read_text())["stages"][name]
    assert entry["finished"] and entry["executor"] == "local"
    assert not list(run.glob(f"{out}.tmp-*")) and not list(run.glob(f"{out}.old-*"))

    changed = make(other)(run, 1, True)  # --force with another config: overwritten
    assert not changed.get("skipped")


@pytest.mark.parametrize("command", ["stream", "dedup", "tokenizer", "pack", "report", "run"])
def test_every_command_takes_the_same_executor_flags(command, tmp_path):
    runner = CliRunner()
    args = [command] if command in ("stream", "run") else [command, str(tmp_path / "run")]
    for bad, message in [(["--workers", "0"], "workers must be >= 1"),
                         (["--executor", "local", "--ray-address", "127.0.0.1:1"], "ray_address")]:
        res = runner.invoke(main, [*args, *bad])
        assert res.exit_code == 2, res.output
        assert message in res.output and "Traceback" not in res.output
        assert len(res.output.strip().splitlines()) == 1
    res = runner.invoke(main, [*args, "--help"])
    for flag in ("--workers", "--executor", "--ray-address", "--force"):
        assert flag in res.output


def test_a_failed_stage_leaves_nothing_under_a_final_name(tmp_path):
    from preprocessing.runner.manifest import RunManifest

    bad = tmp_path / "in.jsonl"
    bad.write_text('{"repo_name": "r", "path": "p.py", "content": "x = 1\\n"}\n')
    cfg = StreamConfig(input=InputConfig(paths=[str(bad)]))
    run_stream(cfg, tmp_path / "run")
    bad.unlink()
    with pytest.raises(ValueError, match="input not found"):
        run_stream(cfg, tmp_path / "run", force=True)
    assert (tmp_path / "run" / "clean" / "stats.json").exists()  # the published outputs are untouched
    assert not list((tmp_path / "run").glob("clean.tmp-*"))
    assert RunManifest(tmp_path / "run").entry("stream")["finished"]


def test_the_executor_section_of_a_preset_and_flags_over_it(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("executor: {workers: 3}\nstream: {input: {limit: 5}}\n")
    runner = CliRunner()
    for command in (["stream"], ["dedup", str(tmp_path)], ["pack", str(tmp_path)], ["tokenizer", str(tmp_path)]):
        res = runner.invoke(main, [*command, "--config", str(preset), "--dry-run"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.output)["executor"] == {"executor": "local", "workers": 3, "ray_address": None,
                                                      "partitions": None}
        res = runner.invoke(main, [*command, "--config", str(preset), "--dry-run", "--workers", "2", "--executor", "ray"])
        assert json.loads(res.output)["executor"]["workers"] == 2
        assert json.loads(res.output)["executor"]["executor"] == "ray"
        res = runner.invoke(main, [*command, "--config", str(preset), "--dry-run", "--partitions", "4"])
        assert json.loads(res.output)["executor"]["partitions"] == 4
