"""TrainConfig loading: presets, strict keys and types, command-line overrides."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from training.config import ConfigError, TrainConfig, load_train_config, to_dict
from training.run import main, parse_overrides

ROOT = Path(__file__).resolve().parents[2]
PRESETS = sorted((ROOT / "configs" / "training").glob("*.yaml"))


def test_presets_load_and_match_the_issue():
    names = {p.stem for p in PRESETS}
    assert {"tiny", "codeparrot-small", "codeparrot"} <= names
    small = load_train_config(ROOT / "configs/training/codeparrot-small.yaml")
    assert (small.global_batch_size, small.seq_length, small.lr, small.warmup_steps, small.weight_decay) == \
        (192, 1024, 5e-4, 2000, 0.1)
    assert (small.n_layer, small.n_head, small.n_embd) == (12, 12, 768)
    big = load_train_config(ROOT / "configs/training/codeparrot.yaml")
    assert (big.global_batch_size, big.seq_length, big.lr, big.warmup_steps) == (512, 1024, 2e-4, 750)
    assert (big.n_layer, big.n_head, big.n_embd) == (48, 25, 1600)


def test_unknown_key_is_named(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("n_layer: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ConfigError, match=r"c.yaml: unknown key 'learning_rate'"):
        load_train_config(path)


@pytest.mark.parametrize("key,value,match", [
    ("n_layer", "two", "n_layer: expected an integer"),
    ("n_layer", True, "n_layer: expected an integer"),
    ("lr", "fast", "lr: expected a number"),
    ("compile", "maybe", "compile: expected true/false"),
    ("trackers", 3, "trackers: expected a list"),
    ("trackers", ["mlflow"], "trackers: unknown"),
    ("n_head", 5, "n_embd=128 must be divisible by n_head=5"),
    ("micro_batch_size", 5, "global_batch_size=16 must be a multiple of micro_batch_size=5"),
    ("min_lr", 1.0, "min_lr=1.0 must be <= lr"),
])
def test_wrong_values_are_rejected(key, value, match):
    with pytest.raises(ConfigError, match=match):
        load_train_config(None, {key: value})


def test_overrides_and_yaml_number_strings(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("lr: 5e-4\n")  # PyYAML reads 5e-4 as a string; a number field accepts it
    overrides = parse_overrides(["max_steps=7", "--resume", "auto", "--peak-flops=1e12", "trackers=tensorboard,wandb"])
    cfg = load_train_config(path, overrides)
    assert (cfg.lr, cfg.max_steps, cfg.resume, cfg.peak_flops, cfg.trackers) == \
        (5e-4, 7, "auto", 1e12, ["tensorboard", "wandb"])
    assert to_dict(cfg)["max_steps"] == 7
    assert TrainConfig().max_steps != 7  # defaults untouched


def test_dry_run_prints_resolved_config(capsys):
    assert main(["--config", str(ROOT / "configs/training/tiny.yaml"), "--dry-run", "max_steps=3"]) == 0
    assert '"max_steps": 3' in capsys.readouterr().out


def test_bad_config_exits_2_with_one_line(tmp_path):
    """A real process: a clean one-line message on stderr, exit status 2, no traceback."""
    proc = subprocess.run([sys.executable, str(ROOT / "training/run.py"), "--config",
                           str(ROOT / "configs/training/tiny.yaml"), "n_layers=3"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "unknown key 'n_layers'" in proc.stderr


def test_accelerate_configs_are_valid():
    from accelerate.commands.config.config_args import load_config_from_file

    expected = {"cpu": ("NO", 1), "cpu-2proc": ("MULTI_GPU", 2), "gpu-1": ("NO", 1), "multi-gpu": ("MULTI_GPU", 8),
                "fsdp": ("FSDP", 8), "multi-node": ("MULTI_GPU", 16)}
    for name, (kind, procs) in expected.items():
        cfg = load_config_from_file(str(ROOT / "configs/accelerate" / f"{name}.yaml"))
        assert (str(cfg.distributed_type).split(".")[-1], cfg.num_processes) == (kind, procs), name
    fsdp = load_config_from_file(str(ROOT / "configs/accelerate/fsdp.yaml"))
    assert fsdp.fsdp_config["fsdp_transformer_layer_cls_to_wrap"] == "GPT2Block"
