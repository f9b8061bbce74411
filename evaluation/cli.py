"""`cp-evaluate`: benchmark a trained model. Each command parses options and calls one library function."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Any

import click


def clean_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The evaluator's own errors (bad problems file, not a model, bad setting) as one line, exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from evaluation.sandbox import SandboxError

        try:
            return fn(*args, **kwargs)
        except (ValueError, SandboxError) as exc:  # ProblemsError and ModelError are ValueErrors
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="codeparrot-toolkit")
def main() -> None:
    """Evaluate trained code models on benchmarks, executing generated code in a sandbox."""


@main.command("humaneval")
@click.argument("model_dir", required=False, type=click.Path(file_okay=False))
@click.option("--self-test", is_flag=True, help="Check the harness: canonical solutions pass, empty completions fail.")
@click.option("--problems", type=click.Path(dir_okay=False), help="JSONL(.gz) in HumanEval's schema (default: HumanEval).")
@click.option("-o", "--output", "output_dir", type=click.Path(file_okay=False),
              help="Where samples.jsonl, problems.jsonl and summary.json go (default: next to MODEL_DIR, humaneval/).")
@click.option("--n-samples", type=int, help="Completions per problem.")
@click.option("--batch-size", type=int, help="Completions generated together.")
@click.option("--temperature", type=float, help="Sampling temperature (0: greedy).")
@click.option("--top-p", type=float, help="Nucleus sampling threshold.")
@click.option("--max-new-tokens", type=int, help="Most tokens per completion.")
@click.option("--seed", type=int, help="Sampling seed.")
@click.option("--limit", type=int, help="Only the first N problems.")
@click.option("--prepend-eos/--no-prepend-eos", default=None, help="Start prompts with EOS (default: as trained).")
@click.option("--workers", type=int, help="Sandboxes running at the same time (default: CPU count).")
@click.option("--timeout", "timeout_s", type=float, help="Wall-clock seconds per program.")
@click.option("--device", help="Torch device for generation (default: the Accelerate process's).")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@clean_errors
def humaneval_cmd(model_dir: str | None, self_test: bool, problems: str | None, output_dir: str | None,
                  dry_run: bool, **flags: Any) -> None:
    """Generate completions with MODEL_DIR, run them in the sandbox, report pass@k."""
    from dataclasses import asdict, replace

    from evaluation.config import HumanEvalConfig

    cfg = replace(HumanEvalConfig(problems=problems), **{k: v for k, v in flags.items() if v is not None})
    if dry_run:
        click.echo(json.dumps(asdict(cfg), indent=2))
        return
    if self_test:
        from evaluation.humaneval import self_test as run_self_test
        from evaluation.sandbox import SandboxLimits

        result = run_self_test(problems, cfg.workers, SandboxLimits(timeout_s=cfg.timeout_s,
                                                                    memory_bytes=cfg.memory_bytes))
        click.echo(result["isolation"])
        n = result["problems"]
        click.echo(f"canonical solutions passed: {result['canonical_passed']}/{n}")
        click.echo(f"empty completions failed:   {result['empty_failed']}/{n}")
        for task, outcome in result["canonical_not_passed"].items():
            click.echo(f"  canonical {task}: {outcome}")
        for task in result["empty_passed"]:
            click.echo(f"  empty {task}: passed")
        if result["canonical_passed"] != n or result["empty_failed"] != n:
            click.echo("self-test FAILED: the harness does not execute programs faithfully", err=True)
            sys.exit(1)
        click.echo("self-test passed")
        return
    if model_dir is None:
        raise click.UsageError("give MODEL_DIR (the exported model, e.g. RUN/model/final) or --self-test")
    from evaluation.humaneval import run_humaneval

    summary = run_humaneval(model_dir, cfg, output_dir, log=lambda line: click.echo(line, err=True))
    if summary is None:  # not the main process under accelerate launch
        return
    scores = "  ".join(f"{k} = {100 * v:.2f} %" for k, v in summary.items() if k.startswith("pass@"))
    click.echo(f"{summary['problems']} problems x {summary['samples_per_problem']} samples: {scores}")
    click.echo(f"outcomes: {', '.join(f'{k}: {v}' for k, v in summary['outcomes'].items())}")
    from evaluation.humaneval import default_output_dir

    click.echo(f"written: {output_dir or default_output_dir(model_dir)}/{{summary.json,problems.jsonl,samples.jsonl}}")


if __name__ == "__main__":
    main()
