"""HumanEval-style evaluation: generate, execute every sample in the sandbox, report pass@k; and the self-test."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from evaluation.config import HumanEvalConfig
from evaluation.generate import Completions, check_model_dir, generate_completions
from evaluation.passk import mean_pass_at_k, pass_at_k
from evaluation.problems import Problem, build_program, load_problems
from evaluation.sandbox import ExecResult, Sandbox, SandboxLimits, detect_isolation


def execute(problems: Sequence[Problem], completions: Sequence[Sequence[str]], sandbox: Sandbox,
            prompts: Sequence[str] | None = None, workers: int | None = None,
            desc: str = "executing") -> list[list[ExecResult]]:
    """Run each problem's completions through ``sandbox``; results per problem, in sample order."""
    from tqdm import tqdm

    prompts = prompts if prompts is not None else [p.prompt for p in problems]
    programs = [build_program(p, c, prompt) for p, prompt, cs in zip(problems, prompts, completions) for c in cs]
    with tqdm(total=len(programs), desc=desc, unit="sample", disable=None) as bar:
        flat = list(sandbox.run_many(programs, workers=workers, progress=lambda _: bar.update(1)))
    out, at = [], 0
    for cs in completions:
        out.append(flat[at:at + len(cs)])
        at += len(cs)
    return out


def self_test(problems_path: str | None = None, workers: int | None = None,
              limits: SandboxLimits | None = None) -> dict:
    """Every canonical solution must pass and every empty completion must fail, through the same sandbox.

    This is what catches a harness that executes nothing (an ``exec`` commented out passes everything).
    """
    problems = load_problems(problems_path, need_solutions=True)
    sandbox = Sandbox(limits or SandboxLimits())
    canonical = execute(problems, [[p.canonical_solution] for p in problems], sandbox, workers=workers,
                        desc="canonical solutions")
    empty = execute(problems, [[""] for _ in problems], sandbox, workers=workers, desc="empty completions")
    return {
        "problems": len(problems),
        "canonical_passed": sum(r[0].passed for r in canonical),
        "empty_failed": sum(not r[0].passed for r in empty),
        "canonical_not_passed": {p.task_id: r[0].outcome for p, r in zip(problems, canonical) if not r[0].passed},
        "empty_passed": [p.task_id for p, r in zip(problems, empty) if r[0].passed],
        "isolation": sandbox.isolation.describe(),
    }


def process_state():
    """Accelerate's view of this process (rank, world, device). Several processes and no GPU: gloo on the
    CPU (as the trainer does); without cpu=True each process would be alone in a world of one."""
    import torch
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1)


def default_output_dir(model_dir: str | Path) -> Path:
    """RUN/model/humaneval for RUN/model/final: next to the export, not inside it."""
    return Path(model_dir).resolve().parent / "humaneval"


def run_humaneval(model_dir: str | Path, cfg: HumanEvalConfig, output_dir: str | Path | None = None,
                  log=print) -> dict | None:
    """Generate ``cfg.n_samples`` completions per problem, execute them, write samples.jsonl,
    problems.jsonl and summary.json into ``output_dir``; returns the summary (None on non-main processes).

    Under ``accelerate launch`` each process generates for problems rank, rank + world, ...; the main
    process gathers the completions from files and executes them.
    """
    state = process_state()
    out_dir = Path(output_dir) if output_dir is not None else default_output_dir(model_dir)
    problems = load_problems(cfg.problems)[: cfg.limit]
    check_model_dir(model_dir)
    if state.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        isolation = detect_isolation()  # before generating: a broken sandbox fails in seconds, not hours
        log(isolation.describe())
    state.wait_for_everyone()

    start = time.monotonic()
    mine = list(range(state.process_index, len(problems), state.num_processes))
    from tqdm import tqdm

    with tqdm(total=len(mine), desc="generating", unit="problem", disable=None) as bar:
        generated = generate_completions(model_dir, problems, cfg, indices=mine, progress=bar.update)
    part = out_dir / f"completions-rank{state.process_index}.jsonl"
    _write_jsonl(part, ({"index": i, "task_id": c.task_id, "completions": c.texts,
                         "prompt_truncated": c.prompt_truncated} for i, c in zip(mine, generated)))
    state.wait_for_everyone()
    if not state.is_main_process:
        return None
    gen_seconds = time.monotonic() - start

    by_index: dict[int, Completions] = {}
    for rank in range(state.num_processes):
        path = out_dir / f"completions-rank{rank}.jsonl"
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                r = json.loads(line)
                by_index[r["index"]] = Completions(r["task_id"], r["completions"], r["prompt_truncated"])
        path.unlink()
    completions = [by_index[i] for i in range(len(problems))]

    start = time.monotonic()
    prompts = [p.prompt.strip() if cfg.strip_prompt else p.prompt for p in problems]
    sandbox = Sandbox(SandboxLimits(timeout_s=cfg.timeout_s, memory_bytes=cfg.memory_bytes), isolation)
    results = execute(problems, [c.texts for c in completions], sandbox, prompts, workers=cfg.workers)
    exec_seconds = time.monotonic() - start

    outcomes: Counter[str] = Counter()
    per_problem = []
    samples = []
    for problem, comp, res in zip(problems, completions, results):
        correct = sum(r.passed for r in res)
        row = {"task_id": problem.task_id, "n": len(res), "correct": correct,
               "prompt_truncated": comp.prompt_truncated}
        row.update({f"pass@{k}": pass_at_k(len(res), correct, k) for k in cfg.ks if k <= len(res)})
        per_problem.append(row)
        for j, (text, r) in enumerate(zip(comp.texts, res)):
            outcomes[r.outcome] += 1
            samples.append({"task_id": problem.task_id, "sample": j, "completion": text, "outcome": r.outcome,
                            "detail": r.detail, "seconds": r.seconds})
    summary = {
        "model_dir": str(model_dir),
        "problems": len(problems),
        "samples_per_problem": cfg.n_samples,
        **mean_pass_at_k([r["n"] for r in per_problem], [r["correct"] for r in per_problem], cfg.ks),
        "outcomes": dict(sorted(outcomes.items(), key=lambda kv: (-kv[1], kv[0]))),
        "prompts_truncated": sum(c.prompt_truncated for c in completions),
        "isolation": isolation.describe(),
        "processes": state.num_processes,
        "generation_seconds": round(gen_seconds, 2),
        "execution_seconds": round(exec_seconds, 2),
        "config": asdict(cfg),
    }
    _write_jsonl(out_dir / "samples.jsonl", samples)
    _write_jsonl(out_dir / "problems.jsonl", per_problem)
    _write_text(out_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _write_jsonl(path: Path, rows) -> None:
    _write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
