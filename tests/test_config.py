"""The strict config loader: presets, overrides, unknown keys and wrong types."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.config import ConfigError, load_config, to_dict
from preprocessing.executors import ExecutorConfig
from preprocessing.stages.stream import StreamConfig

PRESETS = Path(__file__).resolve().parents[1] / "configs" / "preprocess"


def test_defaults_preset_and_overrides(tmp_path: Path):
    preset = tmp_path / "p.yaml"
    preset.write_text("stream:\n  filters:\n    quality:\n      max_line_length: 500\nexecutor: {workers: 3}\n"
                      "other_stage: {x: 1}\n")
    cfg = load_config(StreamConfig, preset, {"filters.quality.min_alnum_fraction": "0.3", "input.limit": None},
                      section="stream")
    assert load_config(ExecutorConfig, preset, {"workers": None}, section="executor").workers == 3
    assert cfg.filters.quality.max_line_length == 500
    assert cfg.filters.quality.min_alnum_fraction == 0.3
    assert to_dict(cfg)["input"]["columns"]["content"] == "content"


@pytest.mark.parametrize("yaml_text, message", [
    ("stream:\n  fliters: {}\n", r"unknown key 'fliters'.*known: .*filters"),
    ("executor:\n  workers: two\n", r"executor.workers: expected an integer, got 'two'"),
    ("stream:\n  filters:\n    quality:\n      enabled: maybe\n", r"expected true/false"),
    ("stream:\n  input:\n    paths: data.jsonl\n", r"input.paths: expected a list"),
    ("executor:\n  workers: 0\n", r"workers must be >= 1"),
    ("executor:\n  executor: spark\n", r"executor must be one of local, ray"),
    ("- a\n- b\n", r"expected a mapping at the top level"),
])
def test_bad_configs_name_the_problem(tmp_path: Path, yaml_text: str, message: str):
    preset = tmp_path / "bad.yaml"
    preset.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_config(ExecutorConfig if "executor" in yaml_text else StreamConfig, preset,
                    section="executor" if "executor" in yaml_text else "stream")


def test_missing_preset_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(StreamConfig, "nope.yaml")


@pytest.mark.parametrize("preset", sorted(PRESETS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_presets_load(preset: Path):
    load_config(StreamConfig, preset, section="stream")
