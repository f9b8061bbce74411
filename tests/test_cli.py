"""The Click toolkit: thin commands, clean one-line errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from preprocessing.cli import main
from tests.conftest import stdlib_rows, write_jsonl


def test_stream_command_runs_and_prints_summary(tmp_path):
    write_jsonl(tmp_path / "in.jsonl.gz", stdlib_rows(30))
    result = CliRunner().invoke(main, ["stream", str(tmp_path / "in.jsonl.gz"), "-o", str(tmp_path / "run"), "--workers", "2"])
    assert result.exit_code == 0, result.output
    assert "stream: read 30 records" in result.output
    stats = json.loads((tmp_path / "run" / "clean" / "stats.json").read_text())
    assert stats["workers"] == 2 and stats["totals"]["records_read"] == 30


def test_dry_run_prints_resolved_config(tmp_path):
    result = CliRunner().invoke(main, ["stream", "--dry-run", "--workers", "4", "--limit", "10"])
    assert result.exit_code == 0
    cfg = json.loads(result.output)
    assert cfg["executor"]["workers"] == 4 and cfg["input"]["limit"] == 10 and cfg["input"]["paths"] == []


def test_errors_are_one_line_without_traceback(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["stream", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: input not found: '{tmp_path / 'missing.jsonl'}'"
    bad = tmp_path / "bad.yaml"
    bad.write_text("stream:\n  nope: 1\n")
    result = runner.invoke(main, ["stream", "--config", str(bad)])
    assert result.exit_code == 2 and "unknown key 'nope'" in result.output and "Traceback" not in result.output


def test_commands_keep_openblas_to_one_thread_unless_told(tmp_path):
    """numpy's OpenBLAS starts a thread per core at import (~0.1 s of CPU); the commands never use it."""
    import os
    import subprocess
    import sys

    code = "import preprocessing.cli.dedup, numpy, os; print(os.environ['OPENBLAS_NUM_THREADS'])"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OPENBLAS_NUM_THREADS": "3"},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "3"


def test_a_command_leaves_the_shutdown_no_cyclic_collection_to_run(tmp_path):
    """After a command the process exits: its objects are frozen at exit (gc.freeze), so the
    interpreter's shutdown does not traverse them all in a full collection; the output is unchanged."""
    import subprocess
    import sys

    rows = write_jsonl(tmp_path / "in.jsonl", stdlib_rows(20))
    code = ("import atexit, gc, sys\n"
            "atexit.register(lambda: print('frozen', gc.get_freeze_count()))  # (runs after the CLI's own)\n"
            "from preprocessing.cli import main\n"
            "main(sys.argv[1:])\n")
    out = subprocess.run([sys.executable, "-c", code, "dedup", "-i", str(rows), "-o", str(tmp_path / "o"), "--workers", "1"],
                         capture_output=True, text=True, check=True)
    frozen = int(out.stdout.strip().splitlines()[-1].split()[1])
    assert frozen > 1000 and "dedup: read 20 records" in out.stdout
    assert (tmp_path / "o" / "part-00000.jsonl.zst").exists() and json.loads((tmp_path / "o" / "stats.json").read_text())


def test_a_commands_imports_are_frozen_until_it_ends_and_the_collector_stays_on(tmp_path):
    """frozen_imports: no collection during a command's imports, their objects in the permanent
    generation while the command runs, given back when it ends (a process running several
    commands, as this one does, frees them as usual)."""
    import gc

    import click

    from preprocessing.cli.common import frozen_imports

    before = gc.get_freeze_count()
    with click.Context(click.Command("x")):
        with frozen_imports():
            assert not gc.isenabled()
            made = [[i] for i in range(1000)]
        assert gc.isenabled() and gc.get_freeze_count() >= before + len(made)
    assert gc.get_freeze_count() == before and gc.isenabled()
    rows = write_jsonl(tmp_path / "in.jsonl", stdlib_rows(20))
    result = CliRunner().invoke(main, ["dedup", "-i", str(rows), "-o", str(tmp_path / "o"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert gc.get_freeze_count() == before and gc.isenabled()


def test_strict_makes_a_truncated_input_a_one_line_error_in_every_command_that_reads_jsonl(tmp_path):
    """Without --strict a cut .zst is a warning after the lines before the cut (exit 0); with it,
    `stream`, `dedup`, `tokenizer` and `pack` stop with one line naming the file, exit code 2."""
    from preprocessing.cli.tokpack import pack_command, tokenizer_command

    full = write_jsonl(tmp_path / "full.jsonl.zst", stdlib_rows(40))
    cut = tmp_path / "in" / "cut.jsonl.zst"
    cut.parent.mkdir()
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 2 // 3])
    runner = CliRunner()
    res = runner.invoke(main, ["stream", str(cut), "-o", str(tmp_path / "lenient")])
    assert res.exit_code == 0 and f"warning: {cut}: truncated (" in res.output
    res = runner.invoke(main, ["stream", "--dry-run", "--strict"])
    assert json.loads(res.output)["input"]["strict"] is True
    tok = tmp_path / "tok"
    assert runner.invoke(tokenizer_command, ["-i", str(full), "-o", str(tok), "--vocab-size", "300"]).exit_code == 0
    commands = [
        (main, ["stream", str(cut), "-o", str(tmp_path / "s"), "--strict"]),
        (main, ["dedup", "-i", str(cut), "-o", str(tmp_path / "d"), "--strict"]),
        (tokenizer_command, ["-i", str(cut), "-o", str(tmp_path / "t"), "--strict"]),
        (pack_command, ["-i", str(cut), "-o", str(tmp_path / "p"), "--tokenizer", str(tok), "--strict"]),
    ]
    for command, args in commands:
        res = runner.invoke(command, args)
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {cut}: truncated ("), (args, res.output)
        assert "Traceback" not in res.output
    assert not list((tmp_path / "s" / "clean").glob("part-*"))  # nothing published under a final name
