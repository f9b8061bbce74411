"""`cp-preprocess report`: thin Click command over :func:`preprocessing.stages.report.write_report`."""

from __future__ import annotations

import json

import click

from preprocessing.cli.common import clean_errors, executor_config, executor_options, stage_config


@click.command("report")
@click.argument("run_dir", type=click.Path(file_okay=False))
@click.option("--compare", "compare_dir", type=click.Path(file_okay=False), help="A second run (B) shown against RUN (A).")
@click.option("-o", "--output", "output_dir", type=click.Path(file_okay=False), help="Output directory (default: RUN/report).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML preset; its report: section is used.")
@click.option("--no-plots", is_flag=True, default=None, help="Tables only (no matplotlib; faster).")
@executor_options
@click.option("--dry-run", is_flag=True, help="Print the resolved config and exit.")
@clean_errors
def report_command(run_dir: str, compare_dir: str | None, output_dir: str | None, config_path: str | None,
                   no_plots: bool | None, workers: int | None, executor: str | None, ray_address: str | None,
                   partitions: int | None, force: bool, dry_run: bool) -> None:
    """Write RUN/report/report.json and a self-contained report.html from the stages' stats (always rebuilt)."""
    from preprocessing.stages.report import ReportConfig, run_report

    ex = executor_config(config_path, workers, executor, ray_address, partitions)
    cfg = stage_config(ReportConfig, config_path, {"plots": False if no_plots else None}, "report", dry_run, ex)
    if cfg is None:
        return
    paths = run_report(run_dir, compare_dir, output_dir, cfg, executor=ex)
    report = json.loads(paths["json"].read_text())
    missing = [m["what"] for m in report.get("missing") or []]
    failed = [c["check"] for c in report.get("checks") or [] if not c["ok"]]
    click.echo(f"report: {paths['html']} (+ {paths['json'].name})")
    if missing:
        click.echo(f"missing: {'; '.join(missing)}")
    for problem in [*(report.get("problems") or []), *(f"check failed: {c}" for c in failed)]:
        click.echo(f"warning: {problem}", err=True)


if __name__ == "__main__":  # pragma: no cover
    report_command()
