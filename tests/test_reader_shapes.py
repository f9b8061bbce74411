"""The JSONL reader against dumps written by other tools: every valid .zst, .gz and plain file is read
whole, byte for byte the lines that the `zstd` CLI (the reference) decompresses, whoever wrote it."""

from __future__ import annotations

import base64
import gzip
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
import zstandard

from preprocessing.readers import JsonlReader
from preprocessing.readers import jsonl as jsonl_mod
from preprocessing.record import CodeFile, Rejected
from tests.conftest import stdlib_rows

ZSTD = shutil.which("zstd")
PZSTD = shutil.which("pzstd")
needs_zstd = pytest.mark.skipif(ZSTD is None, reason="the zstd CLI (Debian package zstd, installed by `make test-deps`) "
                                                     "is not installed: it is the reference these tests compare with")
needs_pzstd = pytest.mark.skipif(PZSTD is None, reason="pzstd (Debian package zstd) is not installed")
MiB = 1 << 20


def json_lines(nbytes: int, seed: int = 0, real: int = 4) -> bytes:
    """About ``nbytes`` of JSON lines: ``real`` standard-library files, then rows whose content is
    seeded random base64 (so that a frame of it is large compressed, too)."""
    rng = random.Random(seed)
    out = [json.dumps(r).encode() + b"\n" for r in stdlib_rows(real, seed % 50)]
    size = sum(map(len, out))
    i = 0
    while size < nbytes:
        body = base64.b64encode(rng.randbytes(rng.randint(200, 60_000))).decode()
        line = json.dumps({"repo_name": f"r/{seed}", "path": f"f{i}.py", "content": f"x = '{body}'\n",
                           "license": "mit"}).encode() + b"\n"
        out.append(line)
        size += len(line)
        i += 1
    return b"".join(out)


def reference(path: Path) -> bytes:
    """What the file decompresses to, as the reference tool says: `zstd -dc` for .zst (it fails on
    a cut or corrupt file), gzip's for .gz, the bytes themselves for a plain file."""
    if path.name.endswith(".zst"):
        done = subprocess.run([ZSTD, "-dcq", "--memory=2048MB", "--", str(path)], capture_output=True, check=True)
        return done.stdout
    if path.name.endswith(".gz"):
        return gzip.decompress(path.read_bytes())
    return path.read_bytes()


def assert_reads_whole(path: Path, records: bool = True) -> None:
    """iter_lines gives the reference's lines byte for byte (as bytes.split numbers them); the
    reader yields one record per non-blank line, rejects none and warns of nothing."""
    data = reference(path)
    expected = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        expected.pop()  # a final newline ends the last line; it does not open an empty one
    got = list(jsonl_mod.iter_lines(path))
    assert len(got) == len(expected), f"{path.name}: {len(got)} lines read, the reference has {len(expected)}"
    assert len(got) - (not data.endswith(b"\n") and bool(data)) == data.count(b"\n")  # = `wc -l`
    assert got == list(enumerate(expected, 1))
    if records:
        reader = JsonlReader(str(path))
        items = list(reader.records())
        assert reader.warnings == []
        assert [i.reason for i in items if isinstance(i, Rejected)] == []
        assert sum(isinstance(i, CodeFile) for i in items) == sum(1 for line in expected if line.strip())


def skippable(payload: bytes, nibble: int = 0) -> bytes:
    return (0x184D2A50 + nibble).to_bytes(4, "little") + len(payload).to_bytes(4, "little") + payload


def zstd_cli(tmp: Path, data: bytes, *flags: str) -> Path:
    src = tmp / "src.jsonl"
    src.write_bytes(data)
    out = tmp / f"cli{''.join(flags).replace('-', '_').replace('=', '')}.jsonl.zst"
    subprocess.run([ZSTD, "-qf", *flags, "-o", str(out), str(src)], check=True)
    return out


# --- one file per shape -------------------------------------------------------------------------

@needs_zstd
def test_one_small_frame(tmp_path: Path):
    path = tmp_path / "small.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor().compress(json_lines(50_000)))
    assert_reads_whole(path)


@needs_zstd
def test_one_frame_larger_than_frame_raw_max(tmp_path: Path):
    data = json_lines(6 * MiB)
    path = tmp_path / "big.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor(level=1).compress(data))
    assert path.stat().st_size > jsonl_mod.FRAME_RAW_MAX
    assert_reads_whole(path)


@needs_zstd
def test_a_streamed_frame_is_fed_to_the_decompressor_a_slice_at_a_time_from_its_start(tmp_path: Path, monkeypatch):
    """The first FRAME_RAW_MAX compressed bytes of a streamed frame (read to find that it is too
    large to come whole) go to the decompressor _STREAM_IN bytes at a time, as the rest does: its
    pieces are each about a zstd block (128 KiB) at most, not one piece of FRAME_RAW_MAX's output."""
    data = json_lines(2 * MiB, seed=5)
    path = tmp_path / "one.jsonl.zst"
    path.write_bytes(zstandard.ZstdCompressor(level=1).compress(data) + zstandard.ZstdCompressor().compress(tail := json_lines(2000, seed=6)))
    monkeypatch.setattr(jsonl_mod, "FRAME_RAW_MAX", 600_000)
    monkeypatch.setattr(jsonl_mod, "_STREAM_IN", 4096)
    with open(path, "rb") as f:
        pieces = list(jsonl_mod._iter_zstd_frames(f))
    assert b"".join(p for p, _raw, n in pieces if n == 0) == data
    assert pieces[-1][::2] == (tail, 1)  # the next frame, from the bytes read past the first
    assert path.stat().st_size > 600_000 and max(len(p) for p, _raw, n in pieces if n == 0) <= 2 * 128 * 1024
    assert_reads_whole(path)


@pytest.mark.slow
@needs_zstd
def test_one_frame_larger_than_64_mib_compressed(tmp_path: Path):
    data = json_lines(90 * MiB, seed=3, real=0)
    path = tmp_path / "huge.jsonl.zst"
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=1).stream_writer(f, size=len(data)) as w:
        w.write(data)
    assert path.stat().st_size > 64 * MiB
    assert_reads_whole(path, records=False)


@needs_zstd
def test_two_concatenated_frames_larger_than_frame_raw_max(tmp_path: Path):
    """The issue's first report: `cat a.zst b.zst` of two ~5 MB frames lost the second frame."""
    cctx = zstandard.ZstdCompressor(level=3)
    path = tmp_path / "two.jsonl.zst"
    path.write_bytes(cctx.compress(json_lines(6 * MiB, seed=1)) + cctx.compress(json_lines(6 * MiB, seed=2)))
    assert_reads_whole(path)


@needs_zstd
def test_many_frames_on_both_sides_of_frame_raw_max_with_and_without_size_and_checksum(tmp_path: Path):
    parts = []
    for i, (nbytes, size, check) in enumerate([(30_000, True, False), (6 * MiB, False, True), (2_000, False, False),
                                               (200_000, True, True), (6 * MiB, True, False), (100, True, True)]):
        cctx = zstandard.ZstdCompressor(level=1, write_content_size=size, write_checksum=check)
        parts.append(cctx.compress(json_lines(nbytes, seed=i, real=1)))
    path = tmp_path / "many.jsonl.zst"
    path.write_bytes(b"".join(parts))
    assert sorted(len(p) > jsonl_mod.FRAME_RAW_MAX for p in parts) == [False] * 4 + [True] * 2
    assert_reads_whole(path)


@needs_zstd
def test_skippable_frames_before_between_and_after(tmp_path: Path):
    cctx = zstandard.ZstdCompressor(write_checksum=True)
    path = tmp_path / "skip.jsonl.zst"
    path.write_bytes(skippable(b"pzstd-like metadata") + cctx.compress(json_lines(40_000, 1)) + skippable(b"", 7)
                     + cctx.compress(json_lines(6 * MiB, 2)) + skippable(b"x" * 100_000, 15))
    assert path.stat().st_size > jsonl_mod.FRAME_RAW_MAX + 100_000
    assert_reads_whole(path)


@needs_zstd
@pytest.mark.parametrize("flags", [("-1",), ("-19",), ("--long=27",), ("-T2", "-1")])
def test_files_written_by_the_zstd_cli(tmp_path: Path, flags: tuple[str, ...]):
    data = json_lines(300_000 if "-19" in flags else 6 * MiB)
    assert_reads_whole(zstd_cli(tmp_path, data, *flags))


@needs_zstd
def test_a_long_window_from_stdin_is_read(tmp_path: Path):
    """`--long=30` with no size known (a pipe) keeps its 1 GiB window: the reader allows it."""
    path = tmp_path / "long30.jsonl.zst"
    with open(path, "wb") as out:
        subprocess.run([ZSTD, "-q", "--long=30", "-c"], input=json_lines(100_000), stdout=out, check=True)
    assert zstandard.get_frame_parameters(path.read_bytes()[:18]).window_size >= 1 << 30
    assert_reads_whole(path)
    # dedup's second pass copies such a frame (read without decompressing, then checked) too
    from preprocessing.dedup.minhash import NearDedupConfig
    from preprocessing.stages.dedup import run_near_dedup
    from preprocessing.readers import InputConfig

    stats = run_near_dedup(NearDedupConfig(), InputConfig(paths=[str(path)]), tmp_path / "dedup")
    assert stats["warnings"] == [] and stats["totals"]["kept"] == reference(path).count(b"\n")


@needs_zstd
@needs_pzstd
def test_files_written_by_pzstd(tmp_path: Path):
    src = tmp_path / "src.jsonl"
    src.write_bytes(json_lines(9 * MiB))
    path = tmp_path / "p.jsonl.zst"
    subprocess.run([PZSTD, "-q", "-p", "2", "-1", "-o", str(path), str(src)], check=True)
    assert_reads_whole(path)


@needs_zstd
@pytest.mark.parametrize("write_content_size", [True, False])
def test_files_written_by_python_zstandard_stream_writer(tmp_path: Path, write_content_size: bool):
    data = json_lines(6 * MiB)
    path = tmp_path / "sw.jsonl.zst"
    cctx = zstandard.ZstdCompressor(level=3, write_content_size=write_content_size)
    with open(path, "wb") as f, cctx.stream_writer(f, size=len(data) if write_content_size else -1) as w:
        for i in range(0, len(data), 100_000):
            w.write(data[i : i + 100_000])
    assert_reads_whole(path)


@needs_zstd
def test_files_written_by_multi_compress_to_buffer(tmp_path: Path):
    data = json_lines(3 * MiB)
    pieces = [data[i : i + 250_000] for i in range(0, len(data), 250_000)]  # frames cut mid-line
    frames = zstandard.ZstdCompressor(level=2).multi_compress_to_buffer(pieces, threads=2)
    path = tmp_path / "multi.jsonl.zst"
    path.write_bytes(b"".join(frames[i].tobytes() for i in range(len(frames))))
    assert_reads_whole(path)


def test_gzip_with_several_members_larger_than_the_chunk(tmp_path: Path):
    data = json_lines(4 * MiB)
    cut = [0, 1000, 1_500_000, 3_900_000, len(data)]  # members of 1 kB and > _CHUNK, cut mid-line
    path = tmp_path / "members.jsonl.gz"
    path.write_bytes(b"".join(gzip.compress(data[a:b]) for a, b in zip(cut, cut[1:])))
    assert_reads_whole(path)


@pytest.mark.parametrize("shape", ["crlf", "no_final_newline", "bom", "huge_line"])
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst"])
def test_plain_line_shapes(tmp_path: Path, shape: str, suffix: str):
    if suffix == ".jsonl.zst" and ZSTD is None:
        pytest.skip("the zstd CLI is not installed")
    data = json_lines(200_000)
    if shape == "crlf":
        data = data.replace(b"\n", b"\r\n")
    elif shape == "no_final_newline":
        data = data[:-1]
    elif shape == "bom":
        data = b"\xef\xbb\xbf" + data
    else:  # one line longer than any chunk, and than a frame of FRAME_RAW_MAX compressed bytes
        body = base64.b64encode(random.Random(5).randbytes(6 * MiB)).decode()
        data += json.dumps({"repo_name": "r", "path": "big.py", "content": body}).encode() + b"\n" + data[: data.index(b"\n") + 1]
    path = tmp_path / f"{shape}{suffix}"
    path.write_bytes(gzip.compress(data, 1) if suffix.endswith(".gz") else
                     zstandard.ZstdCompressor(level=1).compress(data) if suffix.endswith(".zst") else data)
    assert_reads_whole(path)


def test_a_60_mb_line(tmp_path: Path):
    path = tmp_path / "line.jsonl.zst"
    data = b'{"content": "' + b"ab" * (30 * 10**6) + b'"}\n{"content": "x"}\n'
    with open(path, "wb") as f, zstandard.ZstdCompressor(level=1).stream_writer(f) as w:
        for i in range(0, len(data), MiB):
            w.write(data[i : i + MiB])
    got = list(jsonl_mod.iter_lines(path))
    assert [len(line) for _, line in got] == [len(data.split(b"\n")[0]), 16] and got[1][1] == b'{"content": "x"}'


# --- seeded random shapes -----------------------------------------------------------------------

def random_zst(rng: random.Random, tmp: Path, data: bytes) -> bytes:
    """``data`` as a .zst file of a random shape: several frames cut anywhere (mid-line too), each
    by a random writer and level, with or without content size and checksum, some empty, and
    skippable frames anywhere."""
    cuts = sorted(rng.sample(range(1, len(data)), rng.randint(0, 6)))
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(data)]):
        piece = data[a:b]
        if rng.random() < 0.3:
            out.append(skippable(rng.randbytes(rng.randint(0, 50)), rng.randint(0, 15)))
        kind = rng.choice(["compress", "stream_writer", "cli", "empty"])
        cctx = zstandard.ZstdCompressor(level=rng.randint(1, 6), write_checksum=rng.random() < 0.5,
                                        write_content_size=rng.random() < 0.5)
        if kind == "empty":
            out.append(cctx.compress(b""))
            kind = "compress"
        if kind == "compress":
            out.append(cctx.compress(piece))
        elif kind == "stream_writer":
            w = cctx.stream_writer(buf := _Sink(), closefd=False)
            step = rng.choice([1000, 65_536, 1 << 20])
            for i in range(0, len(piece), step):
                w.write(piece[i : i + step])
            w.flush(zstandard.FLUSH_FRAME)
            out.append(buf.getvalue())
        else:
            src = tmp / "piece"
            src.write_bytes(piece)
            flags = [rng.choice(["-1", "-3", "-9"]), rng.choice(["--no-check", "-C"]), rng.choice(["--content-size", "--no-content-size"])]
            out.append(subprocess.run([ZSTD, "-qc", *flags, str(src)], capture_output=True, check=True).stdout)
    if rng.random() < 0.3:
        out.append(skippable(b"trailer"))
    return b"".join(out)


class _Sink:
    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, b) -> int:
        self.parts.append(bytes(b))
        return len(b)

    def getvalue(self) -> bytes:
        return b"".join(self.parts)


@needs_zstd
@pytest.mark.parametrize("seed", range(12))
def test_random_shapes_read_like_zstd_dc(tmp_path: Path, monkeypatch, seed: int):
    """Random multi-frame files checked against `zstd -dc`. FRAME_RAW_MAX is lowered so that
    frames of a few kB fall on both of its sides (whole frames with their bytes, or streamed)."""
    rng = random.Random(seed)
    monkeypatch.setattr(jsonl_mod, "FRAME_RAW_MAX", rng.choice([512, 4096, 60_000]))
    monkeypatch.setattr(jsonl_mod, "_CHUNK", rng.choice([1000, 1 << 16, 1 << 20]))
    monkeypatch.setattr(jsonl_mod, "_STREAM_IN", rng.choice([1, 700, 1 << 16]))
    data = json_lines(rng.randint(1, 400_000), seed, real=rng.randint(0, 5))
    if rng.random() < 0.3:
        data = data.replace(b"\n", b"\r\n")
    path = tmp_path / "r.jsonl.zst"
    path.write_bytes(random_zst(rng, tmp_path, data))
    # whole frames may also be read in pieces (as a frame that decompresses to over WHOLE_PIECED_MIN is)
    monkeypatch.setattr(jsonl_mod, "WHOLE_PIECED_MIN", rng.choice([0, 16 << 20]))
    monkeypatch.setattr(jsonl_mod, "_STREAM_OUT", rng.choice([700, 1 << 20]))
    assert reference(path) == data
    assert_reads_whole(path)


# --- cut and bad files --------------------------------------------------------------------------

def decodable_prefix(path: Path) -> bytes:
    """What the reference tool decompresses of a cut or corrupt file before it stops."""
    tool = [ZSTD, "-dcq"] if path.name.endswith(".zst") else ["gzip", "-dcq"]
    return subprocess.run([*tool, "--", str(path)], capture_output=True).stdout


def cut_shapes(tmp: Path) -> list[Path]:
    """Multi-frame files (FRAME_RAW_MAX lowered: whole frames and streamed ones), pzstd, gzip members."""
    data = json_lines(400_000, 7, real=3)
    cctx = zstandard.ZstdCompressor(level=1, write_checksum=True)
    frames = tmp / "frames.jsonl.zst"
    frames.write_bytes(cctx.compress(data[:20_000]) + skippable(b"meta") + cctx.compress(data[20_000:300_000])
                       + zstandard.ZstdCompressor(write_content_size=False).compress(data[300_000:]))
    out = [frames, zstd_cli(tmp, data, "-3", "--no-check")]
    if PZSTD:
        out.append(tmp / "p.jsonl.zst")
        subprocess.run([PZSTD, "-q", "-p", "2", "-o", str(out[-1]), str(tmp / "src.jsonl")], check=True)
    gz = tmp / "members.jsonl.gz"
    gz.write_bytes(gzip.compress(data[:150_000]) + gzip.compress(data[150_000:]))
    return [*out, gz]


@needs_zstd
@pytest.mark.parametrize("seed", range(3))
def test_files_cut_anywhere_keep_the_lines_before_the_cut_and_name_the_cut(tmp_path: Path, monkeypatch, seed: int):
    """Each shape cut at 4 seeded random offsets (a dozen cuts per seed): the reader yields the
    complete lines that the reference decompresses before the cut (nothing after it, nothing
    invented), rejects the cut line as truncated_input and warns naming the file and the last
    complete line."""
    monkeypatch.setattr(jsonl_mod, "FRAME_RAW_MAX", 30_000)
    rng = random.Random(seed)
    for full in cut_shapes(tmp_path):
        whole = reference(full)
        for offset in sorted(rng.sample(range(1, full.stat().st_size), 4)):
            cut = tmp_path / f"cut-{offset}-{full.name}"
            cut.write_bytes(full.read_bytes()[:offset])
            prefix = decodable_prefix(cut)
            assert whole.startswith(prefix)
            complete = prefix[: prefix.rfind(b"\n") + 1]
            reader = JsonlReader(str(cut))
            items = list(reader.records())
            records = [i for i in items if isinstance(i, CodeFile)]
            rejected = [i for i in items if isinstance(i, Rejected)]
            assert len(records) == complete.count(b"\n"), (cut.name, offset)
            assert [r.path for r in records] == [json.loads(line)["path"] for line in complete.splitlines()]
            partial = prefix[len(complete):]
            assert [(r.reason, r.line) for r in rejected] == ([("truncated_input", len(records) + 1)] if partial.strip() else [])
            assert len(reader.warnings) == 1, reader.warnings
            warning = reader.warnings[0]
            assert warning.startswith(f"{cut}: truncated (") and f"read {len(records)} complete lines" in warning
            assert (f"the last complete one is line {len(records)}" in warning) == bool(records)
            cut.unlink()


def lying_content_size(frame: bytes, delta: int) -> bytes:
    """``frame`` declaring ``delta`` bytes more content than it holds (the format's header layout)."""
    d = frame[4]
    single = (d >> 5) & 1
    n = (single, 2, 4, 8)[d >> 6]
    assert n, "the frame declares its content size"
    pos = 5 + (1 - single) + (0, 1, 2, 4)[d & 3]
    bias = 256 if n == 2 else 0
    size = int.from_bytes(frame[pos : pos + n], "little") + bias + delta
    return frame[:pos] + (size - bias).to_bytes(n, "little") + frame[pos + n :]


@needs_zstd
@pytest.mark.parametrize("damage", ["cut_large_frame", "corrupt_block", "corrupt_large_frame", "lying_size",
                                    "lying_size_large", "garbage_after", "cut_header", "reserved_bit",
                                    "gzip_garbage_after", "gzip_corrupt"])
@pytest.mark.parametrize("pieced", [False, True])
def test_bad_input_is_a_named_warning_after_the_good_frames(tmp_path: Path, monkeypatch, damage: str, pieced: bool):
    """A good frame, then damage: the good frame's rows are read, the damage is one warning naming
    the file (never a traceback), the reference tool fails on it too, and no row is invented.
    ``pieced``: whole frames read in pieces (WHOLE_PIECED_MIN 0), as one that decompresses to more is."""
    monkeypatch.setattr(jsonl_mod, "FRAME_RAW_MAX", 30_000)
    if pieced:
        monkeypatch.setattr(jsonl_mod, "WHOLE_PIECED_MIN", 0)
        monkeypatch.setattr(jsonl_mod, "_STREAM_OUT", 5000)
    good_data, bad_data = json_lines(20_000, 1, real=2), json_lines(100_000, 2, real=2)
    cctx = zstandard.ZstdCompressor(level=1, write_checksum=True)
    good, bad = cctx.compress(good_data), cctx.compress(bad_data)  # 4-byte content size fields
    mid = len(bad) // 2
    path = tmp_path / ("bad.jsonl.gz" if damage.startswith("gzip") else "bad.jsonl.zst")
    tail = {
        "cut_large_frame": bad[:mid],
        "corrupt_block": (small := cctx.compress(bad_data[:20_000]))[:12] + bytes(b ^ 0x5A for b in small[12:40]) + small[40:],
        "corrupt_large_frame": bad[:mid] + bytes(b ^ 0x5A for b in bad[mid : mid + 64]) + bad[mid + 64 :],
        "lying_size": lying_content_size(cctx.compress(bad_data[:20_000]), 7),
        "lying_size_large": lying_content_size(bad, -1000),
        "garbage_after": b"\x00\x00garbage, not a frame\n",
        "cut_header": bad[:6],
        "reserved_bit": bad[:4] + bytes([bad[4] | 0x08]) + bad[5:],
    }
    if damage.startswith("gzip"):
        second = gzip.compress(bad_data)
        path.write_bytes(gzip.compress(good_data) + (b"not gzip" if damage == "gzip_garbage_after" else
                                                     second[:30] + bytes(b ^ 0x5A for b in second[30:90]) + second[90:]))
    else:
        path.write_bytes(good + tail[damage])
    assert subprocess.run([ZSTD if path.suffix == ".zst" else "gzip", "-dcq", str(path)], capture_output=True).returncode != 0
    reader = JsonlReader(str(path))
    items = list(reader.records())
    assert len(reader.warnings) == 1 and reader.warnings[0].startswith(f"{path}: truncated ("), reader.warnings
    paths = [i.path for i in items if isinstance(i, CodeFile)]
    expected = [json.loads(line)["path"] for line in (good_data + bad_data).splitlines()]
    n = good_data.count(b"\n")
    assert len(paths) >= n and paths[:n] == expected[:n]
    if damage != "corrupt_large_frame":  # the damaged frame's lines that decoded before the damage
        assert paths == expected[: len(paths)]
    # (a streamed frame's blocks decode before its checksum is read, as with `zstd -dc`: a block
    # that decodes wrongly without an error yields garbled lines, rejected or read, before the warning)
    assert {i.reason for i in items if isinstance(i, Rejected)} <= {"truncated_input", "invalid_json"}


@needs_zstd
def test_a_frame_larger_than_frame_raw_max_cut_in_the_middle(tmp_path: Path):
    full = tmp_path / "big.jsonl.zst"
    data = json_lines(6 * MiB, 4)
    full.write_bytes(zstandard.ZstdCompressor(level=1).compress(data))
    cut = tmp_path / "cut.jsonl.zst"
    assert full.stat().st_size > jsonl_mod.FRAME_RAW_MAX
    cut.write_bytes(full.read_bytes()[: full.stat().st_size * 3 // 4])
    prefix = decodable_prefix(cut)
    reader = JsonlReader(str(cut))
    records = [i for i in reader.records() if isinstance(i, CodeFile)]
    assert len(records) == prefix.count(b"\n") > 0 and len(reader.warnings) == 1 and str(cut) in reader.warnings[0]


@needs_zstd
def test_empty_frames_are_valid_and_an_empty_file_is_named(tmp_path: Path):
    cctx = zstandard.ZstdCompressor()
    data = json_lines(30_000)
    path = tmp_path / "empties.jsonl.zst"
    path.write_bytes(cctx.compress(b"") + cctx.compress(data) + zstandard.ZstdCompressor(write_content_size=False).compress(b"")
                     + cctx.compress(b""))
    assert_reads_whole(path)
    for name, content in [("zero.jsonl.zst", b""), ("one-empty-frame.jsonl.zst", cctx.compress(b"")), ("zero.jsonl.gz", b"")]:
        (tmp_path / name).write_bytes(content)
        reader = JsonlReader(str(tmp_path / name))
        assert list(reader.records()) == [] and reader.warnings == [f"{tmp_path / name}: empty file (no records)"]


def test_a_whole_frame_of_rle_blocks_is_read_without_claiming_its_bound_in_memory(tmp_path: Path):
    """A frame of ~1,100 RLE blocks (4 bytes each, 128 KiB of spaces each) is a whole frame of
    4.4 kB whose blocks bound its output at 140 MB: it decompresses like any other."""
    blank = b" " * (128 << 10)
    data = b'{"content": "x"}\n' + blank * 1100 + b'\n{"content": "y"}\n'
    frame = zstandard.ZstdCompressor(level=1).compress(data)
    path = tmp_path / "rle.jsonl.zst"
    path.write_bytes(frame)
    assert len(frame) < 64 << 10
    assert [(n, len(line)) for n, line in jsonl_mod.iter_lines(path)] == [(1, 16), (2, len(blank) * 1100), (3, 16)]
