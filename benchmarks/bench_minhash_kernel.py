"""The MinHash signature kernel alone, over real files: CPU seconds of ``signatures`` (the C
kernel: shingling and the min over the permutations) on the contents of a JSONL(.zst) dump, and the
same with 8 permutations (shingling alone, nearly), so that the permutations' part is the
difference. Run it with one tree's code first on the path, alternating trees for an A/B:

    python benchmarks/bench_minhash_kernel.py DUMP.jsonl.zst --repeat 5
    python benchmarks/bench_minhash_kernel.py DUMP.jsonl.zst --repeat 5 --loop avx2   # another loop
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.append(str(ROOT))  # after PYTHONPATH: the tree measured is the one named there


def contents_of(path: Path) -> list[bytes]:
    import zstandard

    raw = path.read_bytes()
    if path.suffix == ".zst":
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    return [json.loads(line)["content"].encode() for line in raw.splitlines() if line.strip()]


def cpu_of(hasher, contents: list[bytes], batch: int) -> float:
    t = time.process_time()
    for i in range(0, len(contents), batch):
        hasher.signatures(contents[i:i + batch])
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dump", type=Path)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--loop", help="the permutations' loop: x86-64-v4, avx2 or baseline (default: the best here)")
    args = ap.parse_args()

    from preprocessing.dedup import native
    from preprocessing.dedup.minhash import MinHashSignature, NearDedupConfig

    loop = getattr(native._module(), "minhash_loop", None)  # (a tree from before it: its one loop)
    print("kernels:", native._module().__file__, "loop:", loop(args.loop) if loop else "(one)")

    contents = contents_of(args.dump)
    full, few = MinHashSignature(NearDedupConfig()), MinHashSignature(NearDedupConfig(num_perm=8))
    assert full.native, "the C kernels are not built here"
    cpu_of(full, contents[:50], args.batch)  # warm
    runs = [(cpu_of(full, contents, args.batch), cpu_of(few, contents, args.batch)) for _ in range(args.repeat)]
    mb = sum(map(len, contents)) / 1e6
    best_full, best_few = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"{len(contents)} files, {mb:.1f} MB, {full.cfg.num_perm} permutations; CPU s, best of {args.repeat}: "
          f"signatures {best_full:.3f}, with 8 permutations {best_few:.3f}, "
          f"the permutations' part {best_full - best_few:.3f}")
    print("all runs:", " ".join(f"{a:.3f}/{b:.3f}" for a, b in runs))


if __name__ == "__main__":
    main()
