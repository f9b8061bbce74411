"""Executors: the Ray executor gives the local executor's bytes (a local Ray, started and stopped here)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.executors import ExecutorConfig, ExecutorError, make_executor
from preprocessing.stages.dedup import run_dedup
from preprocessing.stages.pack import PackConfig, pack
from preprocessing.readers import InputConfig
from preprocessing.stages.stream import StreamConfig, run_stream, run_stream_and_dedup
from preprocessing.stages.tokenizer import TokenizerConfig, train_tokenizer
from tests._faults import KillingExecutor
from tests.test_runner import comparable, tree_bytes

ray = pytest.importorskip("ray", reason="the Ray executor's tests need Ray: pip install .[ray]")


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (starting one costs seconds); the executor joins it."""
    root = str(Path(__file__).resolve().parents[1])  # the workers import this checkout (and tests._faults)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}})
    yield make_executor(ExecutorConfig(executor="ray", workers=2))[0]
    ray.shutdown()


def _stream_cfg() -> StreamConfig:
    cfg = StreamConfig(input=InputConfig(limit=400, include_site_packages=False))  # a few hundred real files
    cfg.output.max_shard_bytes = 1 << 20
    return cfg


@pytest.fixture(scope="module")
def local_runs(tmp_path_factory) -> Path:
    """stream, dedup and the fused form on the local executor with 2 workers: the reference bytes."""
    base = tmp_path_factory.mktemp("local")
    run_stream(_stream_cfg(), base / "run", executor=2)
    run_dedup(NearDedupConfig(), base / "run", 2)
    run_stream_and_dedup(_stream_cfg(), NearDedupConfig(), base / "fused", executor=2)
    return base


def test_stream_dedup_and_fused_are_byte_identical_on_ray(local_ray, local_runs, tmp_path):
    run = tmp_path / "run"
    s = run_stream(_stream_cfg(), run, executor=local_ray)
    d = run_dedup(NearDedupConfig(), run, local_ray)
    for out in ("clean", "dedup"):
        assert tree_bytes(run / out) == tree_bytes(local_runs / "run" / out)
    for stats, name in ((s, "clean"), (d, "dedup")):
        assert comparable(stats) == comparable(json.loads((local_runs / "run" / name / "stats.json").read_text()))
    assert json.loads((run / "manifest.json").read_text())["stages"]["stream"]["executor"] == "ray"
    fused = run_stream_and_dedup(_stream_cfg(), NearDedupConfig(), tmp_path / "fused", executor=local_ray)
    for out in ("clean", "dedup"):
        assert tree_bytes(tmp_path / "fused" / out) == tree_bytes(local_runs / "fused" / out)
    assert comparable(fused["dedup"]) == comparable(json.loads((local_runs / "fused" / "dedup" / "stats.json").read_text()))


def test_pack_is_byte_identical_on_ray(local_ray, local_runs, tmp_path):
    dedup = local_runs / "run" / "dedup"
    train_tokenizer(dedup, tmp_path / "tok", TokenizerConfig(vocab_size=800, compare_gpt2=False))
    cfg = PackConfig(seq_length=128, valid_fraction=0.2, batch_chars=64 << 10)  # several tasks
    a = pack(dedup, tmp_path / "tok", tmp_path / "local", cfg, executor=2)
    b = pack(dedup, tmp_path / "tok", tmp_path / "ray", cfg, executor=local_ray)
    assert tree_bytes(tmp_path / "local") == tree_bytes(tmp_path / "ray")
    assert comparable(a) == comparable(b)


def test_a_worker_killed_once_changes_nothing(local_ray, local_runs, tmp_path):
    marker = tmp_path / "killed"
    run_stream(_stream_cfg(), tmp_path / "run", executor=KillingExecutor(local_ray, marker))
    assert marker.exists()  # a worker did die
    assert tree_bytes(tmp_path / "run" / "clean") == tree_bytes(local_runs / "run" / "clean")


def _ray(partitions: int):
    """An executor on the module's local Ray with ``partitions`` exact-dedup partitions."""
    return make_executor(ExecutorConfig(executor="ray", workers=2, partitions=partitions))[0]


@pytest.fixture(scope="module")
def dup_gathered(tmp_path_factory):
    """A dump with exact duplicates across and within files, streamed with the in-driver table."""
    from tests.test_exact_partitioned import duplicate_dump

    base = tmp_path_factory.mktemp("dups")
    paths = duplicate_dump(base)
    return paths, base / "run", run_stream(_dup_cfg(paths), base / "run", executor=ExecutorConfig(workers=2))


def _dup_cfg(paths):
    cfg = StreamConfig(input=InputConfig(paths=paths, batch_records=9))
    cfg.output.max_shard_bytes = 256 << 10
    return cfg


@pytest.mark.parametrize("partitions", [1, 4])
def test_partitioned_exact_dedup_on_ray_gives_the_gathered_bytes(local_ray, dup_gathered, tmp_path, partitions):
    paths, ref_run, ref = dup_gathered
    stats = run_stream(_dup_cfg(paths), tmp_path / "run", executor=_ray(partitions))
    assert tree_bytes(tmp_path / "run" / "clean") == tree_bytes(ref_run / "clean")
    assert comparable(stats) == comparable(ref)
    assert stats["stages"]["exact_dedup"]["dropped"]["exact_duplicate"] >= 60


def test_a_partition_task_killed_once_changes_nothing(local_ray, dup_gathered, tmp_path):
    paths, ref_run, ref = dup_gathered
    marker = tmp_path / "killed"
    stats = run_stream(_dup_cfg(paths), tmp_path / "run", executor=KillingExecutor(_ray(4), marker, "partitions"))
    assert marker.exists()  # a partition task's worker did die, and Ray ran the task again
    assert tree_bytes(tmp_path / "run" / "clean") == tree_bytes(ref_run / "clean")
    assert comparable(stats) == comparable(ref)


def test_partitioned_near_dedup_on_ray_with_a_partition_task_killed(local_ray, tmp_path):
    """dedup of a dump with edited copies: band buckets in 4 partition tasks, one killed once
    (Ray runs it again), gives the files and stats of the in-driver tables on the local executor."""
    from tests.test_stream import _near_dup_dump

    cfg = StreamConfig(input=InputConfig(paths=[str(_near_dup_dump(tmp_path))], batch_records=7))
    near = NearDedupConfig(verify="exact", keep="longest")
    for run in ("local", "ray"):
        run_stream(cfg, tmp_path / run, executor=1)
    ref = run_dedup(near, tmp_path / "local", 1)
    marker = tmp_path / "killed"
    got = run_dedup(near, tmp_path / "ray", KillingExecutor(_ray(4), marker, "partitions"))
    assert marker.exists() and ref["near_dedup"]["removed"] >= 5
    assert tree_bytes(tmp_path / "ray" / "dedup") == tree_bytes(tmp_path / "local" / "dedup")
    assert comparable(got) == comparable(ref)


def test_errors_are_one_line(tmp_path):
    with pytest.raises(ExecutorError, match=r"cannot reach the Ray cluster at '127\.0\.0\.1:9'"):
        make_executor(ExecutorConfig(executor="ray", ray_address="127.0.0.1:9"))
    # Without Ray installed: a one-line error that says how to install it.
    code = ("import sys; sys.modules['ray'] = None\n"
            "from preprocessing.executors import ExecutorConfig, make_executor\n"
            "make_executor(ExecutorConfig(executor='ray'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "pip install .[ray]" in out.stderr
    from click.testing import CliRunner

    from preprocessing.cli import main

    res = CliRunner().invoke(main, ["stream", "-o", str(tmp_path / "r"), "--ray-address", "127.0.0.1:9"])
    assert res.exit_code == 2 and res.output.startswith("error: cannot reach the Ray cluster at '127.0.0.1:9'")
    assert len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "r" / "clean").exists()
    # Every command: the same line, at once (one TCP probe, no minutes-long ray.init wait), nothing written.
    dump = tmp_path / "d.jsonl"
    dump.write_text('{"content": "x = 1\\n", "repo_name": "r", "path": "a.py"}\n')
    for args in (["dedup", "--input", str(dump), "-o", str(tmp_path / "dd")], ["report", str(tmp_path)],
                 ["run", "-o", str(tmp_path / "all")], ["stream", "-o", "memory://nowhere", "--executor", "ray"]):
        address = "ray://127.0.0.1:9" if args[0] == "run" else "127.0.0.1:9"
        t0 = time.perf_counter()
        res = CliRunner().invoke(main, [*args, "--ray-address", address])
        assert time.perf_counter() - t0 < 8 * 2  # CONNECT_TIMEOUT_S bounds the wait (a refused port: at once)
        assert res.exit_code == 2 and res.output.startswith(f"error: cannot reach the Ray cluster at {address!r} ("), res.output
        assert len(res.output.strip().splitlines()) == 1, args
    assert not (tmp_path / "dd").exists() and not (tmp_path / "all").exists() and not (tmp_path / "report").exists()
    res = CliRunner().invoke(main, ["stream", "-o", str(tmp_path / "m"), "--ray-address", "head-node"])
    assert res.exit_code == 2 and res.output == "error: Ray address 'head-node' is not host:port, ray://host:port or auto\n"


@pytest.mark.slow
def test_the_whole_pipeline_on_ray_gives_the_local_bytes(local_ray, tmp_path):
    """`cp-preprocess run` on one executor for every stage (tokenizer and report included)."""
    from preprocessing.stages.pipeline import run_pipeline

    preset = tmp_path / "p.yaml"
    preset.write_text("stream: {input: {limit: 300, include_site_packages: false}}\n"
                      "tokenizer: {vocab_size: 600, heldout_fraction: 0.2, compare_gpt2: false}\n"
                      "pack: {seq_length: 64, valid_fraction: 0.3}\n")
    run_pipeline(tmp_path / "local", preset, executor=2)
    run_pipeline(tmp_path / "ray", preset, executor=local_ray)
    for out in ("clean", "dedup", "tokenizer", "shards"):
        assert tree_bytes(tmp_path / "ray" / out) == tree_bytes(tmp_path / "local" / out), out
    assert (tmp_path / "ray" / "report" / "report.html").exists()


def test_known_duplicates_by_round_on_ray(local_ray, tmp_path):
    """The keys that earlier rounds passed reach the Ray tasks through the object store: the same
    labels, bytes and stats as the local executor, gathered and partitioned."""
    from tests.test_stream import rounds_dump

    cfg = rounds_dump(tmp_path)
    ref = run_stream(cfg, tmp_path / "local", executor=1)
    assert ref["stages"]["filter"]["dropped"] == {"license:unknown": 4}
    for name, ex in (("ray", local_ray), ("ray-p2", _ray(2))):
        got = run_stream(cfg, tmp_path / name, executor=ex)
        assert tree_bytes(tmp_path / name / "clean") == tree_bytes(tmp_path / "local" / "clean")
        assert comparable(got) == comparable(ref)


def test_an_existing_cluster_by_address(tmp_path):
    """`--ray-address` joins a Ray cluster started apart (`ray start --head`, its own processes,
    stopped here): stream and dedup there give the local bytes; the driver is a separate process
    (this one may have its own Ray already)."""
    import shutil
    import signal
    import socket

    ray_cli = shutil.which("ray", path=os.path.dirname(sys.executable)) or shutil.which("ray")
    if ray_cli is None:
        pytest.skip("the ray command line is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
           "RAY_USAGE_STATS_ENABLED": "0",
           # Ray's token authentication, as its docs set it up for a cluster: the same token for every process
           "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex()}
    import tempfile

    temp = tempfile.mkdtemp(prefix="cpray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    head = subprocess.Popen([ray_cli, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
                             "--include-dashboard=false", f"--temp-dir={temp}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:  # the head's GCS listens once the cluster is up
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert head.poll() is None and time.monotonic() < deadline, "ray start --head failed"
                time.sleep(0.5)
        while True:  # and answers for its head node (on a loaded machine, some seconds after its port opens)
            status = subprocess.run([ray_cli, "status", f"--address=127.0.0.1:{port}"], env=env,
                                    capture_output=True, timeout=120)
            if status.returncode == 0:
                break
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head: the cluster never answered"
            time.sleep(0.5)
        cli = [sys.executable, "-m", "preprocessing.cli"]
        for name, extra in (("local", ["--workers", "2"]),
                            ("cluster", ["--executor", "ray", "--ray-address", f"127.0.0.1:{port}"])):
            run = str(tmp_path / name)
            for cmd in (["stream", "-o", run, "--limit", "300", "--config", str(_limit_preset(tmp_path))], ["dedup", run]):
                out = subprocess.run([*cli, *cmd, *extra], env=env, capture_output=True, text=True, timeout=300)
                assert out.returncode == 0, out.stderr[-2000:]
        for out in ("clean", "dedup"):
            assert tree_bytes(tmp_path / "cluster" / out) == tree_bytes(tmp_path / "local" / out)
        manifest = json.loads((tmp_path / "cluster" / "manifest.json").read_text())
        assert manifest["stages"]["stream"]["executor"] == "ray"
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _limit_preset(tmp_path: Path) -> Path:
    preset = tmp_path / "small.yaml"
    preset.write_text("stream: {input: {include_site_packages: false}}\n")
    return preset


def test_dedup_of_lines_the_driver_reads_on_ray_with_a_worker_killed(local_ray, tmp_path):
    """A one-frame `json.dumps` dump: the driver cuts it into line units kept in its spool
    (dedup/linespool.py), which the workers of a local Ray read by name (they share this disk),
    and pass 2 replays; a worker killed once (its task retried) changes nothing: the local bytes."""
    from preprocessing.stages.dedup import run_near_dedup
    from tests.test_dedup_linespool import near_dup_rows, one_frame_dump

    dump = one_frame_dump(tmp_path / "in" / "dump.jsonl.zst", near_dup_rows(40))
    inputs = InputConfig(paths=[str(dump)], batch_records=8)
    ref = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "local", executor=2)
    marker = tmp_path / "killed"
    got = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "ray", executor=KillingExecutor(local_ray, marker))
    assert marker.exists() and local_ray.local_disk
    assert got["totals"] == ref["totals"] and ref["near_dedup"]["removed"] >= 5
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")


def test_dedup_of_compressed_files_the_workers_read_on_ray_with_a_worker_killed(local_ray, tmp_path):
    """A dump of .gz / .zst files: the Ray workers read and cut their own files (each keeps its
    file's lines in the run's work dir for pass 2), a worker killed once changes nothing: the
    local bytes."""
    from preprocessing.stages.dedup import run_near_dedup
    from tests.test_dedup_linespool import compressed_dump, near_dup_rows

    inputs = InputConfig(paths=compressed_dump(tmp_path / "in", near_dup_rows(60)), batch_records=8)
    ref = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "local", executor=1)
    marker = tmp_path / "killed"
    got = run_near_dedup(NearDedupConfig(), inputs, tmp_path / "ray", executor=KillingExecutor(local_ray, marker))
    assert marker.exists()
    assert got["totals"] == ref["totals"] and got["warnings"] == ref["warnings"] and ref["near_dedup"]["removed"] >= 5
    assert tree_bytes(tmp_path / "ray") == tree_bytes(tmp_path / "local")
