"""cp-evaluate humaneval: pass@k, the problems file, the self-test, the CLI's errors, a tiny model end to end."""

from __future__ import annotations

import gzip
import json
from math import comb
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluation.cli import main
from evaluation.config import HumanEvalConfig
from evaluation.passk import mean_pass_at_k, pass_at_k
from evaluation.problems import ProblemsError, build_program, humaneval_path, load_problems

# --- pass@k -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n, c, k, expected", [
    (2, 1, 1, 0.5),                      # one of two samples correct
    (5, 2, 2, 0.7),                      # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (4, 1, 3, 0.75),                     # 1 - C(3,3)/C(4,3) = 1 - 1/4
    (10, 0, 5, 0.0),
    (10, 10, 5, 1.0),
    (5, 3, 3, 1.0),                      # n - c < k: every draw of 3 holds a correct one
    (200, 3, 100, 1 - (100 * 99 * 98) / (200 * 199 * 198)),   # C(197,100)/C(200,100) = 970200/7880400
    (200, 1, 1, 1 / 200),
])
def test_pass_at_k_against_hand_computed_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_pass_at_k_equals_the_combinatorial_formula():
    for n in range(1, 25):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k), abs=1e-12)


def test_pass_at_k_is_stable_for_large_n():
    value = pass_at_k(100_000, 10, 1000)  # comb() would be numbers with thousands of digits
    assert 0 < value < 1
    assert value == pytest.approx(1 - comb(100_000 - 10, 1000) / comb(100_000, 1000), rel=1e-9)


def test_mean_pass_at_k_reports_only_ks_every_problem_has_samples_for():
    result = mean_pass_at_k([10, 10], [1, 0], [1, 10, 100])
    assert result == pytest.approx({"pass@1": 0.05, "pass@10": 0.5})
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(3, 1, 4)


# --- problems -----------------------------------------------------------------------------------------


def test_humaneval_ships_164_problems_offline():
    assert humaneval_path().name == "HumanEval.jsonl.gz"
    problems = load_problems(need_solutions=True)
    assert len(problems) == 164
    assert problems[0].task_id == "HumanEval/0" and problems[-1].task_id == "HumanEval/163"
    program = build_program(problems[0], problems[0].canonical_solution)
    assert program.startswith(problems[0].prompt) and program.rstrip().endswith("check(has_close_elements)")


def write_problems(path: Path, rows: list[dict]) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


TWO = [
    {"task_id": "t/0", "prompt": "def inc(x):\n", "canonical_solution": "    return x + 1\n",
     "test": "def check(f):\n    assert f(1) == 2\n", "entry_point": "inc"},
    {"task_id": "t/1", "prompt": "def neg(x):\n", "canonical_solution": "    return -x\n",
     "test": "def check(f):\n    assert f(2) == -2\n", "entry_point": "neg"},
]


def test_a_problem_without_a_required_field_is_named(tmp_path):
    rows = [TWO[0], {k: v for k, v in TWO[1].items() if k != "test"}]
    path = write_problems(tmp_path / "p.jsonl", rows)
    with pytest.raises(ProblemsError, match=r"p.jsonl:2: missing or non-string field\(s\) test"):
        load_problems(path)


def test_problems_from_a_gz_file_and_duplicates(tmp_path):
    assert [p.task_id for p in load_problems(write_problems(tmp_path / "p.jsonl.gz", TWO))] == ["t/0", "t/1"]
    with pytest.raises(ProblemsError, match="duplicate task_id 't/0'"):
        load_problems(write_problems(tmp_path / "d.jsonl", [TWO[0], TWO[0]]))
    with pytest.raises(ProblemsError, match="cannot read problems"):
        load_problems(tmp_path / "missing.jsonl")


# --- self-test ------------------------------------------------------------------------------------------


def test_self_test_164_canonical_pass_and_164_empty_fail():
    # (a generous wall-clock limit: the harness's fidelity is tested here, not its limit, and a loaded
    # machine can stall a program past the default 3 s; the limit itself: test_evaluation_sandbox.py)
    result = CliRunner().invoke(main, ["humaneval", "--self-test", "--workers", "4", "--timeout", "30"])
    assert result.exit_code == 0, result.output
    assert "canonical solutions passed: 164/164" in result.output
    assert "empty completions failed:   164/164" in result.output
    assert result.output.startswith("sandbox: ")


def test_self_test_fails_on_a_wrong_canonical_solution(tmp_path):
    rows = [TWO[0], {**TWO[1], "canonical_solution": "    return x\n"}]
    result = CliRunner().invoke(main, ["humaneval", "--self-test", "--problems",
                                       str(write_problems(tmp_path / "p.jsonl", rows))])
    assert result.exit_code == 1
    assert "canonical solutions passed: 1/2" in result.output
    assert "canonical t/1: failed: AssertionError" in result.output


# --- CLI errors ---------------------------------------------------------------------------------------


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_problems_file_with_a_missing_field(tmp_path):
    path = write_problems(tmp_path / "p.jsonl", [{k: v for k, v in TWO[0].items() if k != "entry_point"}])
    result = CliRunner().invoke(main, ["humaneval", "--self-test", "--problems", str(path)])
    one_line_error(result, "p.jsonl:1", "entry_point")


def test_cli_model_dir_that_is_not_a_causal_lm(tmp_path):
    from transformers import ViTConfig

    ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64).save_pretrained(
        str(tmp_path / "vit"))
    result = CliRunner().invoke(main, ["humaneval", str(tmp_path / "vit"), "--limit", "1", "--n-samples", "1"])
    one_line_error(result, "vit", "not a causal language model")
    result = CliRunner().invoke(main, ["humaneval", str(tmp_path), "--limit", "1", "--n-samples", "1"])
    one_line_error(result, "no config.json")


def test_cli_bad_settings_and_dry_run():
    one_line_error(CliRunner().invoke(main, ["humaneval", "--self-test", "--top-p", "0"]), "top_p")
    result = CliRunner().invoke(main, ["humaneval", "--dry-run", "--n-samples", "7"])
    assert result.exit_code == 0 and json.loads(result.output)["n_samples"] == 7
    assert json.loads(result.output)["temperature"] == HumanEvalConfig().temperature
    assert CliRunner().invoke(main, ["humaneval"]).exit_code == 2  # neither MODEL_DIR nor --self-test


# --- end to end -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, one_torch_thread) -> Path:
    """A random-init GPT-2 with the demo's byte-level BPE trained on a slice of the standard library."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    from training.demo_data import train_tokenizer

    root = tmp_path_factory.mktemp("tiny_model")
    tok_dir = train_tokenizer(root / "tokenizer", vocab_size=300, corpus_bytes=60_000)
    tokenizer = PreTrainedTokenizerFast.from_pretrained(str(tok_dir))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=256, n_embd=32, n_layer=1,
                                       n_head=2, bos_token_id=tokenizer.eos_token_id,
                                       eos_token_id=tokenizer.eos_token_id))
    final = root / "model" / "final"
    model.save_pretrained(str(final))
    tokenizer.save_pretrained(str(final))
    return final


def test_tiny_model_end_to_end(tiny_model, tmp_path):
    out = tmp_path / "eval"
    args = ["humaneval", str(tiny_model), "--limit", "3", "--n-samples", "4", "--batch-size", "2",
            "--max-new-tokens", "24", "--temperature", "0.8", "--workers", "2", "--device", "cpu", "-o", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "3 problems x 4 samples: pass@1 = " in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == 3 and summary["samples_per_problem"] == 4
    assert set(summary) >= {"pass@1", "outcomes", "isolation", "config"} and "pass@10" not in summary
    assert sum(summary["outcomes"].values()) == 12
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [(s["task_id"], s["sample"]) for s in samples] == [(f"HumanEval/{i}", j) for i in range(3) for j in range(4)]
    assert all(s["outcome"] for s in samples)
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text().splitlines()]
    assert [p["n"] for p in problems] == [4, 4, 4]
    assert summary["pass@1"] == pytest.approx(sum(p["pass@1"] for p in problems) / 3)
    for s in samples:  # cut at the first stop sequence
        assert not any(stop in s["completion"] for stop in HumanEvalConfig().stop_sequences)
    # the same seed gives the same completions
    again = tmp_path / "again"
    assert CliRunner().invoke(main, args[:-1] + [str(again)]).exit_code == 0
    assert [json.loads(x)["completion"] for x in (again / "samples.jsonl").read_text().splitlines()] == \
        [s["completion"] for s in samples]


def test_split_across_processes_gives_the_same_completions(tiny_model):
    """What `accelerate launch` does: rank r generates problems r, r + world, ...; each problem's samples
    must not depend on how the problems were split."""
    from evaluation.generate import generate_completions

    problems = load_problems()[:3]
    cfg = HumanEvalConfig(n_samples=3, batch_size=2, max_new_tokens=12, temperature=0.8, device="cpu")
    whole = generate_completions(tiny_model, problems, cfg)
    rank0 = generate_completions(tiny_model, problems, cfg, indices=[0, 2])
    rank1 = generate_completions(tiny_model, problems, cfg, indices=[1])
    assert [c.texts for c in (rank0[0], rank1[0], rank0[1])] == [c.texts for c in whole]
    assert all(len(c.texts) == 3 for c in whole)


@pytest.mark.slow
def test_accelerate_launch_two_cpu_processes_match_one(tiny_model, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): problems split, gathered, the same samples as one process."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    args = ["humaneval", str(tiny_model), "--limit", "3", "--n-samples", "2", "--batch-size", "2",
            "--max-new-tokens", "8"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(root)}
    launched = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file",
                               str(root / "configs/accelerate/cpu-2proc.yaml"), "--main_process_port", "0",
                               "-m", "evaluation.cli", *args, "-o", str(tmp_path / "two")],
                              capture_output=True, text=True, cwd=root, env=env, timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["processes"] == 2
    assert CliRunner().invoke(main, [*args, "--device", "cpu", "-o", str(tmp_path / "one")]).exit_code == 0
    rows = [(tmp_path / d / "samples.jsonl").read_text().splitlines() for d in ("one", "two")]
    completions = [[(json.loads(x)["task_id"], json.loads(x)["completion"]) for x in r] for r in rows]
    assert completions[0] == completions[1] and len(completions[0]) == 6
