"""Inputs and run directories by fsspec URL: memory:// gives the local bytes, object-store publishing
(final names, then the completion marker), and the one-line errors (no filesystem, workers that
cannot see a path). Nothing here touches a network."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import fsspec
import pytest
from click.testing import CliRunner
from fsspec.implementations.memory import MemoryFileSystem

from preprocessing.cli import main
from preprocessing.dedup.minhash import NearDedupConfig
from common.io import COMPLETE_MARKER, FilesystemError, is_complete, join, published_files
from preprocessing.stages.dedup import run_dedup
from preprocessing.stages.pack import PackConfig, run_pack
from preprocessing.readers import InputConfig
from preprocessing.stages.stream import StreamConfig, run_stream
from preprocessing.stages.tokenizer import TokenizerConfig, run_tokenizer
from tests._pycorpus import write_corpus
from tests.test_runner import comparable, tree_bytes


class NoRenameFileSystem(MemoryFileSystem):
    """fsspec's memory filesystem under the protocol ``norename://``: the toolkit gives it what it
    gives an object store (no rename: files under their final names, then the completion marker)."""

    protocol = "norename"
    store: dict = {}  # its own files, apart from memory://
    pseudo_dirs = [""]
    fail_after: int | None = None
    """Fail the upload after this many files (a store that runs out of quota mid-publish)."""

    @classmethod
    def _strip_protocol(cls, path):
        return super()._strip_protocol(path.removeprefix("norename://") if isinstance(path, str) else path)

    def put_file(self, lpath, rpath, **kwargs):
        if NoRenameFileSystem.fail_after is not None:
            if NoRenameFileSystem.fail_after <= 0:
                raise OSError("quota exceeded")
            NoRenameFileSystem.fail_after -= 1
        return super().put_file(lpath, rpath, **kwargs)


fsspec.register_implementation("norename", NoRenameFileSystem, clobber=True)


def _tree(url: str) -> dict[str, bytes]:
    """tree_bytes of a directory URL."""
    fs, root = fsspec.core.url_to_fs(url)
    return {p[len(root) + 1:]: fs.cat_file(p) for p in sorted(fs.find(root))
            if not p.endswith(("/stats.json", "/" + COMPLETE_MARKER))}


def _stats(url: str) -> dict:
    fs, root = fsspec.core.url_to_fs(url)
    return json.loads(fs.cat_file(f"{root}/stats.json"))


@pytest.fixture(scope="module")
def dump(tmp_path_factory) -> tuple[Path, str]:
    """A real dump (stdlib code, raw CodeParrot schema): two .jsonl.zst parts (split by the driver)
    and one plain .jsonl (byte ranges the worker reads itself), locally and on memory://."""
    local = tmp_path_factory.mktemp("dump") / "in"
    write_corpus(local, max_files=160, parts=3)
    zst = zstandard_decompress(local / "part-00002.jsonl.zst")
    (local / "part-00002.jsonl.zst").unlink()
    (local / "part-00002.jsonl").write_bytes(zst)
    url = f"memory://dump-{uuid.uuid4().hex[:8]}"
    fs = fsspec.filesystem("memory")
    for p in sorted(local.iterdir()):
        fs.put_file(str(p), f"{url[len('memory://'):]}/{p.name}")
    return local, url


def zstandard_decompress(path: Path) -> bytes:
    import zstandard

    with open(path, "rb") as f:
        return zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True).read()


def _stages(inputs: str, run) -> dict[str, dict]:
    """stream -> dedup -> tokenizer -> pack into ``run`` (a Path or a URL), one stage at a time."""
    cfg = StreamConfig(input=InputConfig(paths=[inputs]))
    cfg.output.max_shard_bytes = 200_000  # several shards
    return {
        "stream": run_stream(cfg, run),
        "dedup": run_dedup(NearDedupConfig(), run),
        "tokenizer": run_tokenizer(TokenizerConfig(vocab_size=600, heldout_fraction=0.2, compare_gpt2=False), run),
        "pack": run_pack(PackConfig(seq_length=64, valid_fraction=0.3), run),
    }


@pytest.fixture(scope="module")
def local_run(dump, tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    run = tmp_path_factory.mktemp("local") / "run"
    return run, _stages(str(dump[0]), run)


OUTS = {"stream": "clean", "dedup": "dedup", "tokenizer": "tokenizer", "pack": "shards"}


@pytest.fixture(scope="module")
def memory_run(dump) -> tuple[str, dict[str, dict]]:
    run = f"memory://run-{uuid.uuid4().hex[:8]}"
    return run, _stages(dump[1], run)


def test_memory_input_and_run_give_the_local_bytes(dump, local_run, memory_run):
    """Input and RUN on memory://: every stage's files byte-identical to the local-path run, the
    same accounting; a re-run resumes from the manifest (every stage skipped)."""
    run, stats = memory_run
    local, local_stats = local_run
    for stage, out in OUTS.items():
        assert _tree(f"{run}/{out}") == tree_bytes(local / out), stage
        for key in ("totals", "stages", "input_files"):  # (config and examples name their input)
            assert comparable(stats[stage]).get(key) == comparable(local_stats[stage]).get(key), (stage, key)
        assert is_complete(join(run, out))
    assert stats["stream"]["totals"]["records_read"] == local_stats["stream"]["totals"]["records_read"] > 100
    manifest = json.loads(fsspec.filesystem("memory").cat_file(run[len("memory://"):] + "/manifest.json"))
    assert all(manifest["stages"][s]["finished"] for s in OUTS)
    again = _stages(dump[1], run)
    assert all(again[s].get("skipped") for s in OUTS)
    fs = fsspec.filesystem("memory")
    assert not [p for p in fs.find(run[len("memory://"):]) if ".tmp" in p or ".old-" in p]  # nothing left over


def test_training_reads_shards_and_tokenizer_by_url(memory_run, local_run, tmp_path):
    """data_dir and tokenizer_dir by URL: copied once, checked, into the cache; the copy is the
    local run's bytes, check_shards accepts it, a second call copies nothing, a changed shard is named."""
    from shards import ShardError, ShardReader, tokenizer_hash
    from training.config import TrainConfig
    from training.data import check_shards, local_inputs

    run = memory_run[0]
    cfg = TrainConfig(data_dir=f"{run}/shards", tokenizer_dir=f"{run}/tokenizer", output_dir=str(tmp_path / "out"),
                      seq_length=64)
    got = local_inputs(cfg)
    assert Path(got.data_dir).is_relative_to(tmp_path / "out" / "data-cache")
    local = local_run[0]
    for split in ("train", "valid"):
        assert tree_bytes(Path(got.data_dir) / split) == tree_bytes(local / "shards" / split)
    copied = {k: v for k, v in tree_bytes(Path(got.tokenizer_dir)).items() if k != ".complete"}
    assert copied == tree_bytes(local / "tokenizer")
    check_shards(got, tokenizer_hash(got.tokenizer_dir))
    assert (ShardReader(Path(got.data_dir) / "train")[3] == ShardReader(local / "shards" / "train")[3]).all()
    stamp = (Path(got.data_dir) / "train" / "shard.00000.zst").stat().st_mtime_ns
    assert local_inputs(cfg) == got and (Path(got.data_dir) / "train" / "shard.00000.zst").stat().st_mtime_ns == stamp
    fs, root = fsspec.core.url_to_fs(f"{run}/shards/train/shard.00000.zst")
    good = fs.cat_file(root)
    try:
        fs.pipe_file(root, good[:-1] + bytes([good[-1] ^ 1]))
        with pytest.raises(ShardError, match=r"shard\.00000\.zst: .* do not match index\.json"):
            local_inputs(dataclass_replace(cfg, output_dir=str(tmp_path / "other")))
    finally:
        fs.pipe_file(root, good)


def dataclass_replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_object_store_publishes_final_names_then_the_marker(dump, local_run):
    """A filesystem without rename: each stage directory gets its files under their final names and
    the completion marker last; a publish that fails midway leaves no marker, so the directory
    reads as not there (the manifest does not skip it, dedup refuses it) and a re-run completes it."""
    cfg = StreamConfig(input=InputConfig(paths=[str(dump[0])]))
    cfg.output.max_shard_bytes = 200_000
    run = f"norename://run-{uuid.uuid4().hex[:8]}"
    NoRenameFileSystem.fail_after = 2
    try:
        with pytest.raises(FilesystemError, match=rf"^{run}/clean: quota exceeded$"):
            run_stream(cfg, run)
    finally:
        NoRenameFileSystem.fail_after = None
    fs, root = fsspec.core.url_to_fs(run)
    assert fs.exists(f"{root}/clean/part-00000.jsonl.zst")  # final names were written ...
    assert not is_complete(join(run, "clean"))  # ... but no marker: not complete
    assert published_files(join(run, "clean"), "part-*.jsonl.zst") == []
    with pytest.raises(ValueError, match="holds no part-\\*.jsonl.zst shards"):
        run_dedup(NearDedupConfig(), run)
    stats = run_stream(cfg, run)
    assert not stats.get("skipped")
    local = local_run[0]
    assert _tree(f"{run}/clean") == tree_bytes(local / "clean")
    marker = fs.cat_file(f"{root}/clean/{COMPLETE_MARKER}").decode().split()  # the names it vouches for
    assert marker == sorted({*_tree(f"{run}/clean"), "stats.json"})
    run_dedup(NearDedupConfig(), run)
    assert _tree(f"{run}/dedup") == tree_bytes(local / "dedup")
    assert run_stream(cfg, run)["skipped"]


def test_workers_cannot_see_memory(dump, tmp_path):
    """memory:// lives in this process: worker processes (local or Ray) are refused before any work."""
    cfg = StreamConfig(input=InputConfig(paths=[dump[1]]))
    run = f"memory://refused-{uuid.uuid4().hex[:8]}"
    with pytest.raises(FilesystemError, match=r"the workers cannot see it \(memory:// lives in this process's memory\)"):
        run_stream(cfg, run, executor=2)
    assert not fsspec.filesystem("memory").exists(run[len("memory://"):])  # nothing written, not even the manifest
    from preprocessing.executors import ExecutorConfig

    pytest.importorskip("ray")
    with pytest.raises(FilesystemError, match="the workers cannot see it"):
        run_stream(cfg, tmp_path / "r", executor=ExecutorConfig(executor="ray", workers=1))
    assert not (tmp_path / "r").exists()
    res = CliRunner().invoke(main, ["stream", dump[1], "-o", str(tmp_path / "c"), "--workers", "2"])
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"error: {dump[1]}: the workers cannot see it") and len(res.output.splitlines()) == 1
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("url, says", [
    ("s3://bucket/dump/part-0.jsonl.zst", "pip install s3fs"),
    ("gs://bucket/dump/", "pip install gcsfs"),
    ("nosuchfs://bucket/dump.jsonl", "unknown filesystem protocol 'nosuchfs'"),
])
def test_a_filesystem_that_cannot_be_used_is_one_line(url, says, tmp_path, monkeypatch):
    """An input or RUN on a filesystem whose package is missing, or (s3fs installed) without
    credentials: exit 2, one line naming the URL and what is wrong, at once, nothing written."""
    import importlib.util

    proto = url.split("://")[0]
    package = {"s3": "s3fs", "gs": "gcsfs"}.get(proto)
    if package and importlib.util.find_spec(package):
        if proto != "s3":
            pytest.skip(f"{package} is installed here: this case is about the error without it")
        says = "Unable to locate credentials"  # no key anywhere, no instance metadata: botocore fails before any request
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
            monkeypatch.delenv(var, raising=False)
        for var in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
            monkeypatch.setenv(var, str(tmp_path / "none"))
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for args in (["stream", url, "-o", str(tmp_path / "out")], ["stream", "-o", url]):
        t0 = time.perf_counter()
        res = CliRunner().invoke(main, args)
        assert time.perf_counter() - t0 < 10
        assert res.exit_code == 2, res.output
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and url.rstrip("/").split("/")[2] in lines[0], res.output
        assert says in lines[0], res.output
    assert not (tmp_path / "out").exists()


def test_a_url_that_names_nothing_is_one_line(tmp_path):
    res = CliRunner().invoke(main, ["stream", "memory://nothing-here/dump.jsonl", "-o", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output == "error: input not found: 'memory://nothing-here/dump.jsonl'\n"


def test_file_urls_are_local_paths(dump):
    """file:// takes the local fast path (Paths, builtin open), memory:// lists the same files."""
    from preprocessing.readers.base import expand_paths

    local, url = dump
    assert expand_paths([f"file://{local}"]) == expand_paths([str(local)]) == sorted(local.iterdir())
    assert [Path(u).name for u in expand_paths([url])] == [p.name for p in sorted(local.iterdir())]
    assert [Path(u).name for u in expand_paths([f"{url}/*.zst"])] == ["part-00000.jsonl.zst", "part-00001.jsonl.zst"]
