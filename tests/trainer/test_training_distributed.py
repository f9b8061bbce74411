"""A real 2-process data-parallel run on the CPU (accelerate launch, gloo): disjoint data, identical weights."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from trainer_helpers import tiny_config

from training.trainer import train

ROOT = Path(__file__).resolve().parents[2]


def launch(run: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    """accelerate launch with the shipped 2-process CPU config; the tiny_config settings as overrides."""
    cfg = tiny_config(run, out)
    keys = ("data_dir", "tokenizer_dir", "output_dir", "n_layer", "n_head", "n_embd", "global_batch_size",
            "micro_batch_size", "lr", "min_lr", "warmup_steps", "eval_batches", "log_every", "num_workers")
    args = [f"{k}={getattr(cfg, k)}" for k in keys] + ["trackers=", "progress_bar=false", "export=false", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
               str(ROOT / "configs/accelerate/cpu-2proc.yaml"), "--main_process_port", "0",
               str(ROOT / "training/run.py"), *args]
    # its own process group, so that a timeout ends the ranks too, not only the launcher
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                          start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise AssertionError(f"accelerate launch timed out:\n{stderr[-3000:]}") from None
    return subprocess.CompletedProcess(command, proc.returncode, stdout, stderr)


def read_trace(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_processes_split_the_data_and_agree(demo_run, tmp_path):
    settings = dict(max_steps=6, eval_every=3, save_every=3, trace=True)
    proc = launch(demo_run, tmp_path / "ddp", *(f"{k}={v}" for k, v in settings.items()))
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0 = read_trace(tmp_path / "ddp/trace/rank-0.jsonl")
    rank1 = read_trace(tmp_path / "ddp/trace/rank-1.jsonl")
    # the same global batches as one process, split between the ranks without overlap
    single = train(tiny_config(demo_run, tmp_path / "single", **settings))
    one = read_trace(tmp_path / "single/trace/rank-0.jsonl")
    for a, b, c in zip(rank0[:-1], rank1[:-1], one[:-1], strict=True):
        assert len(a["samples"]) == len(b["samples"]) == 4
        assert not set(a["samples"]) & set(b["samples"])
        assert a["samples"] + b["samples"] == c["samples"]  # rank 0 holds the first half of the global batch
    assert rank0[-1]["weights"] == rank1[-1]["weights"]  # DDP kept the replicas identical
    # the two-process run follows the one-process run up to float summation order
    metrics = [json.loads(line) for line in (tmp_path / "ddp/metrics.jsonl").read_text().splitlines()]
    ddp_losses = {r["step"]: r["loss"] for r in metrics if "loss" in r}
    assert ddp_losses.keys() == single["losses"].keys()
    assert all(math.isclose(ddp_losses[s], single["losses"][s], rel_tol=1e-3) for s in ddp_losses)
    ddp_evals = [r["val_loss"] for r in metrics if "val_loss" in r]  # same validation samples, any world size
    assert len(ddp_evals) == 2
    assert all(math.isclose(a, e["val_loss"], rel_tol=1e-3) for a, e in zip(ddp_evals, single["evals"], strict=True))
    state = json.loads((tmp_path / "ddp/checkpoints/step-00000006/trainer_state.json").read_text())
    assert state["dataset"]["consumed_samples"] == 6 * 8
    assert sorted(p.name for p in (tmp_path / "ddp/checkpoints/step-00000006").glob("random_states_*")) == \
        ["random_states_0.pkl", "random_states_1.pkl"]


def test_global_batch_not_divisible_by_world_size(demo_run, tmp_path):
    proc = launch(demo_run, tmp_path / "bad", "global_batch_size=12", "max_steps=1")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert errors and "global_batch_size=12 is not divisible by world_size x micro_batch_size = 2 x 4" in errors[0]


def test_resume_a_one_process_checkpoint_on_two_processes(demo_run, tmp_path):
    """Resume is exact in data on another world size: the global batches continue where they stopped."""
    settings = dict(max_steps=5, save_every=2, trace=True)
    single = train(tiny_config(demo_run, tmp_path / "single", **settings))
    shutil.copytree(tmp_path / "single/checkpoints/step-00000002", tmp_path / "ddp/checkpoints/step-00000002")
    proc = launch(demo_run, tmp_path / "ddp", *(f"{k}={v}" for k, v in settings.items()))
    assert proc.returncode == 0, proc.stderr[-3000:]
    one = read_trace(tmp_path / "single/trace/rank-0.jsonl")[2:-1]
    rank0 = read_trace(tmp_path / "ddp/trace/rank-0.jsonl")[:-1]
    rank1 = read_trace(tmp_path / "ddp/trace/rank-1.jsonl")[:-1]
    assert [r["step"] for r in rank0] == [3, 4, 5]
    assert [a["samples"] + b["samples"] for a, b in zip(rank0, rank1, strict=True)] == [c["samples"] for c in one]
    metrics = [json.loads(line) for line in (tmp_path / "ddp/metrics.jsonl").read_text().splitlines()]
    ddp_losses = {r["step"]: r["loss"] for r in metrics if "loss" in r}
    assert ddp_losses.keys() == {3, 4, 5}
    assert all(math.isclose(ddp_losses[s], single["losses"][s], rel_tol=1e-3) for s in ddp_losses)
