"""The trainer on real packed code: learning, exact resume, checkpoints, export, and its input errors."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from trainer_helpers import tiny_config

from shards import ShardReader
from training.checkpoint import list_checkpoints
from training.run import main
from training.trainer import train


@pytest.fixture(scope="module")
def trained(demo_run, tmp_path_factory) -> tuple[dict, Path]:
    """One 100-step run with evaluation, checkpoints and export, shared by the tests that inspect it."""
    out = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(demo_run, out, max_steps=100, warmup_steps=10, min_lr=1e-3, eval_every=50, save_every=25,
                      keep_last=2, log_every=10, num_workers=1, export=True, trackers=["tensorboard"])
    return train(cfg), out


def tokens(shard_dir: Path) -> np.ndarray:
    reader = ShardReader(shard_dir)
    return np.concatenate([reader[i] for i in range(len(reader))]).astype(np.int64)


def context_free_loss(run: Path) -> float:
    """Validation loss of the best model that ignores the context: train-set token frequencies."""
    counts = np.bincount(tokens(run / "shards" / "train"), minlength=2048) + 0.5
    return float(-np.log(counts / counts.sum())[tokens(run / "shards" / "valid")].mean())


def test_loss_drops_on_real_code(trained, demo_run):
    summary, _ = trained
    losses = summary["losses"]
    assert losses[10] < math.log(2048) + 0.5  # starts from about uniform over the (padded) vocabulary
    assert losses[100] < losses[10] - 0.5
    first_eval, last_eval = summary["evals"]
    assert (first_eval["step"], last_eval["step"]) == (50, 100)
    # below what token frequencies alone explain: the model has learnt to use the context
    assert last_eval["val_loss"] < first_eval["val_loss"]
    assert last_eval["val_loss"] < context_free_loss(demo_run) - 0.1
    assert math.isclose(last_eval["val_perplexity"], math.exp(last_eval["val_loss"]))


def test_logs_checkpoints_and_export(trained):
    summary, out = trained
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train_records = [r for r in records if "loss" in r]
    assert [r["step"] for r in train_records] == list(range(10, 101, 10))
    assert all(r["tokens_per_s"] > 0 and r["grad_norm"] > 0 and r["lr"] > 0 for r in train_records)
    assert list((out / "logs").rglob("events.out.tfevents*"))  # TensorBoard tracker wrote events
    # keep_last=2 of the checkpoints at 25, 50, 75, 100; no temporary directory left behind
    assert [p.name for p in list_checkpoints(out)] == ["step-00000075", "step-00000100"]
    assert [p.name for p in (out / "checkpoints").iterdir() if p.name.startswith(".")] == []
    state = json.loads((out / "checkpoints/step-00000100/trainer_state.json").read_text())
    assert state["step"] == 100 and state["dataset"]["consumed_samples"] == 100 * 8
    assert state["config"]["n_embd"] == 64  # the resolved config travels with the checkpoint
    final = Path(summary["export_dir"])
    assert json.loads((final / "training_config.json").read_text())["max_steps"] == 100


def test_exported_model_generates_with_pipeline(trained):
    from transformers import AutoModelForCausalLM, pipeline

    final = Path(trained[0]["export_dir"])
    model = AutoModelForCausalLM.from_pretrained(final)
    assert model.config.vocab_size % 64 == 0 and model.config.n_positions == 128
    generator = pipeline("text-generation", model=str(final), device="cpu")
    out = generator("def add(a, b):\n    return", max_new_tokens=12, do_sample=False)[0]["generated_text"]
    assert out.startswith("def add(a, b):\n    return") and len(out) > len("def add(a, b):\n    return")


def test_generate_stops_at_end_of_function(trained):
    from training.generate import STOP_SEQUENCES, generate, truncate_at_stop

    assert truncate_at_stop("    return 1\n\ndef g():\n") == "    return 1\n"
    assert truncate_at_stop("    x = 1\n# done") == "    x = 1"
    completions = generate(trained[0]["export_dir"], "def add(a, b):\n", max_new_tokens=40, temperature=0.8,
                           top_p=0.95, num_samples=2, seed=1)
    assert len(completions) == 2
    assert all(completion and not any(s in completion for s in STOP_SEQUENCES) for completion in completions)


def test_resume_is_exact(demo_run, tmp_path):
    """Continuing from step 4 sees the same data and gives bit-identical losses to the uninterrupted run,
    also with dropout (RNG restored) and a different number of DataLoader workers."""
    settings = dict(max_steps=10, save_every=4, keep_last=5, dropout=0.1, eval_every=5)
    full = train(tiny_config(demo_run, tmp_path / "full", num_workers=2, trace=True, **settings))
    resumed_dir = tmp_path / "resumed"
    shutil.copytree(tmp_path / "full/checkpoints/step-00000004", resumed_dir / "checkpoints/step-00000004")
    resumed = train(tiny_config(demo_run, resumed_dir, num_workers=0, trace=True, resume="auto", **settings))
    assert resumed["start_step"] == 4
    assert resumed["losses"] == {s: loss for s, loss in full["losses"].items() if s > 4}
    assert resumed["evals"] == [e for e in full["evals"] if e["step"] > 4]
    trace = [json.loads(line) for line in (tmp_path / "full/trace/rank-0.jsonl").read_text().splitlines()]
    trace_resumed = [json.loads(line) for line in (resumed_dir / "trace/rank-0.jsonl").read_text().splitlines()]
    assert trace_resumed == trace[4:]  # same samples per step, and the same final weights


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def cli_args(run: Path, out: Path, *extra: str) -> list[str]:
    return [f"data_dir={run / 'shards'}", f"tokenizer_dir={run / 'tokenizer'}", f"output_dir={out}",
            "n_layer=1", "n_head=2", "n_embd=32", "global_batch_size=8", "micro_batch_size=4", "max_steps=2",
            "eval_batches=1", "num_workers=0", "trackers=", "export=false", *extra]


def test_error_other_tokenizer(demo_run, tmp_path, capsys):
    other = tmp_path / "tokenizer"
    shutil.copytree(demo_run / "tokenizer", other)
    tok = json.loads((other / "tokenizer.json").read_text())
    tok["added_tokens"][0]["normalized"] = not tok["added_tokens"][0]["normalized"]  # another tokenizer
    (other / "tokenizer.json").write_text(json.dumps(tok))
    code, err = run_cli(cli_args(demo_run, tmp_path / "out", f"tokenizer_dir={other}"), capsys)
    assert code == 2 and err.count("\n") == 1 and "tokenizer" in err and "index.json" in err


def test_error_missing_data_dir(tmp_path, demo_run, capsys):
    code, err = run_cli(cli_args(demo_run, tmp_path / "out", f"data_dir={tmp_path / 'nowhere'}"), capsys)
    assert code == 2 and "no index.json" in err and "data_dir" in err


def test_error_missing_and_corrupt_checkpoint(trained, demo_run, tmp_path, capsys):
    code, err = run_cli(cli_args(demo_run, tmp_path / "a", f"resume={tmp_path / 'missing'}"), capsys)
    assert code == 2 and "no such checkpoint directory" in err

    # a damaged copy of a real checkpoint of the same run shape
    _, out = trained
    broken = tmp_path / "b" / "checkpoints" / "step-00000100"
    shutil.copytree(out / "checkpoints/step-00000100", broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    args = cli_args(demo_run, tmp_path / "b", "resume=auto", "n_layer=2", "n_embd=64", "max_steps=101")
    code, err = run_cli(args, capsys)
    assert code == 2 and err.count("\n") == 1 and "could not be loaded" in err and "step-00000100" in err

    (broken / "trainer_state.json").unlink()
    code, err = run_cli(args, capsys)
    assert code == 2 and "not a complete checkpoint" in err


def test_error_output_dir_of_another_run(trained, demo_run, tmp_path, capsys):
    _, out = trained
    other = tmp_path / "other"
    shutil.copytree(out / "checkpoints", other / "checkpoints")
    code, err = run_cli(cli_args(demo_run, other, "resume=auto"), capsys)  # n_embd=32 here, 64 there
    assert code == 2 and "belongs to another run" in err and "n_embd" in err
    code, err = run_cli(cli_args(demo_run, other, "resume=none"), capsys)
    assert code == 2 and "already holds checkpoints" in err and "resume=auto" in err


def test_gradient_checkpointing_gives_the_same_losses(demo_run, tmp_path):
    plain = train(tiny_config(demo_run, tmp_path / "plain", max_steps=3))
    ckpt = train(tiny_config(demo_run, tmp_path / "ckpt", max_steps=3, gradient_checkpointing=True))
    assert all(math.isclose(plain["losses"][s], ckpt["losses"][s], rel_tol=1e-5) for s in (1, 2, 3))


def test_finished_run_resumes_to_nothing_then_extends(demo_run, tmp_path):
    first = train(tiny_config(demo_run, tmp_path, max_steps=3))
    again = train(tiny_config(demo_run, tmp_path, max_steps=3))
    assert (again["start_step"], again["steps"], again["losses"]) == (3, 3, {})
    longer = train(tiny_config(demo_run, tmp_path, max_steps=5))
    assert longer["start_step"] == 3 and sorted(longer["losses"]) == [4, 5]
    assert first["steps"] == 3


def test_generate_cli(trained, capsys):
    from training.generate import main as generate_main

    assert generate_main([trained[0]["export_dir"], "--prompt", "import os\n", "--max-new-tokens", "8",
                          "--temperature", "0"]) == 0
    assert capsys.readouterr().out.startswith("import os\n")
    assert generate_main([str(Path(trained[0]["export_dir"]).parent), "--prompt", "x"]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_error_checkpoint_of_another_tokenizer(trained, demo_run, tmp_path, capsys):
    _, out = trained
    other = tmp_path / "other"
    shutil.copytree(out / "checkpoints", other / "checkpoints")
    state_file = other / "checkpoints/step-00000100/trainer_state.json"
    state = json.loads(state_file.read_text())
    state["tokenizer_hash"] = "sha256:" + "0" * 64
    state_file.write_text(json.dumps(state))
    code, err = run_cli(cli_args(demo_run, other, "n_layer=2", "n_embd=64", "max_steps=101"), capsys)
    assert code == 2 and "belongs to another run" in err and "tokenizer: checkpoint sha256:000" in err


def test_no_valid_split_needed_without_evaluation(demo_run, tmp_path, capsys):
    shutil.copytree(demo_run / "shards" / "train", tmp_path / "shards" / "train")
    (tmp_path / "shards" / "valid").mkdir()
    (tmp_path / "shards" / "valid" / "index.json").write_text("{}")  # unusable; must not be read
    summary = train(tiny_config(demo_run, tmp_path / "out", data_dir=str(tmp_path / "shards"), max_steps=2,
                                eval_batches=0))
    assert summary["steps"] == 2 and summary["evals"] == []
    code, err = run_cli(cli_args(demo_run, tmp_path / "out2", f"data_dir={tmp_path / 'shards'}"), capsys)
    assert code == 2 and "valid/index.json" in err
