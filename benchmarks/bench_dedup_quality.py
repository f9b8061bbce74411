"""Near-dedup quality on the local Python installation: precision/recall/F1 against exact Jaccard.

Files are read through the toolkit's embedded-default reader (stdlib + site-packages: vendored
copies and version skew give many real near-duplicates); a keyed sample of ``--files`` of them
is taken (the same sample on every machine with the same installation). Truth: the exact
Jaccard of the shingle sets of all pairs, from one sparse matrix product; a file is a true
duplicate if it has a partner with Jaccard >= threshold. A method flags a file when it puts
it in a cluster (ours) or when LSH links it to another file (the datasketch recipe).

    python benchmarks/bench_dedup_quality.py                 # 3000 files, ~1 min
    python benchmarks/bench_dedup_quality.py --files 8000 --preset bigcode
"""

from __future__ import annotations

import argparse
import heapq
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from preprocessing.dedup.index import cluster_contents
from preprocessing.dedup.minhash import (
    MinHashSignature,
    NearDedupConfig,
    encode_content,
)
from preprocessing.hashing import keyed_uniform, record_key
from preprocessing.readers import InputConfig, open_reader
from preprocessing.record import CodeFile

NON_ALPHA = re.compile("[^A-Za-z_0-9]")


def sample_installation(n: int, seed: int = 0) -> list[str]:
    """A keyed sample of ``n`` readable files of this Python installation, in reader order."""
    heap: list[tuple[float, int, str]] = []
    for i, item in enumerate(open_reader(InputConfig()).records()):
        if not isinstance(item, CodeFile):
            continue
        u = -keyed_uniform(record_key(item.repo_name, item.path), "bench_quality", seed)
        if len(heap) < n:
            heapq.heappush(heap, (u, i, item.content))
        elif u > heap[0][0]:
            heapq.heapreplace(heap, (u, i, item.content))
    return [c for _, _, c in sorted(heap, key=lambda t: t[1])]


def exact_truth(sets: list[np.ndarray], threshold: float) -> np.ndarray:
    """bool per file: has a partner with exact Jaccard >= threshold (sparse X @ X.T)."""
    vocab, inverse = np.unique(np.concatenate(sets), return_inverse=True)
    rows = np.repeat(np.arange(len(sets)), [len(s) for s in sets])
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, inverse)), shape=(len(sets), len(vocab)))
    inter = (x @ x.T).tocoo()
    sizes = np.array([len(s) for s in sets], dtype=np.float64)
    off = inter.row != inter.col
    r, c, v = inter.row[off], inter.col[off], inter.data[off].astype(np.float64)
    jac = v / (sizes[r] + sizes[c] - v)
    dup = np.zeros(len(sets), dtype=bool)
    dup[r[jac >= threshold - 1e-9]] = True
    return dup


def datasketch_recipe(texts: list[str], cfg: NearDedupConfig) -> np.ndarray:
    """CodeParrot's minhash_deduplication.py recipe: MinHash(256) + MinHashLSH, query then insert
    (with the preset's shingles and threshold)."""
    from datasketch import MinHash, MinHashLSH

    lsh = MinHashLSH(threshold=cfg.threshold, num_perm=cfg.num_perm)
    flagged = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        words = [t for t in NON_ALPHA.split(text.lower() if cfg.lowercase else text) if len(t.strip()) > 0]
        tokens = set(words)
        if len(tokens) < cfg.min_tokens:
            continue
        if cfg.ngram > 1:  # BigCode: the same n-gram shingles as ours, joined by spaces
            tokens = {" ".join(words[i : i + cfg.ngram]) for i in range(len(words) - cfg.ngram + 1)}
        m = MinHash(num_perm=cfg.num_perm)
        m.update_batch([t.encode() for t in tokens])
        hits = lsh.query(m)
        if hits:
            flagged[i] = True
            flagged[hits] = True
        lsh.insert(i, m)
    return flagged


def prf(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    tp = int((pred & truth).sum())
    p = tp / max(int(pred.sum()), 1)
    r = tp / max(int(truth.sum()), 1)
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(2 * p * r / max(p + r, 1e-12), 4),
            "flagged": int(pred.sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=3000, help="files sampled from the installation")
    ap.add_argument("--preset", choices=["codeparrot", "bigcode"], default="codeparrot")
    ap.add_argument("--no-baseline", action="store_true", help="skip the (slow) datasketch recipe")
    ap.add_argument("--partitions", type=int, default=0,
                    help="also run ours with the band buckets in P partition tasks (must give the same clusters)")
    args = ap.parse_args()
    base = NearDedupConfig() if args.preset == "codeparrot" else NearDedupConfig(threshold=0.7, ngram=5, lowercase=True, min_tokens=5)

    t = time.perf_counter()
    texts = sample_installation(args.files)
    hasher = MinHashSignature(base)
    data = [encode_content(x) for x in texts]
    sets = [hasher.shingles(d) for d in data]
    ntok = hasher.signatures(data).ntokens
    eligible = ntok >= base.min_tokens  # too-short files are never clustered by either method
    truth = exact_truth(sets, base.threshold) & eligible
    print(f"{len(texts)} files ({sum(map(len, data)) / 1e6:.1f} MB), {eligible.sum()} with >= {base.min_tokens} "
          f"tokens, {truth.sum()} true near-duplicates at Jaccard >= {base.threshold} "
          f"(truth in {time.perf_counter() - t:.1f}s)")

    variants = {
        "ours (default: signature verify, fp/fn 0.1/0.9)": base,
        "ours (signature verify, fp/fn 0.5/0.5)": NearDedupConfig(**{**base.__dict__, "false_positive_weight": 0.5,
                                                                      "false_negative_weight": 0.5}),
        "ours (exact verify, fp/fn 0.1/0.9)": NearDedupConfig(**{**base.__dict__, "verify": "exact"}),
    }
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, cfg in variants.items():
            t = time.perf_counter()
            res = cluster_contents(texts, cfg, Path(tmp) / "w")
            rows.append((name, cfg.lsh_params, prf(res.cluster >= 0, truth), time.perf_counter() - t))
            if args.partitions:
                from preprocessing.executors import ExecutorConfig, make_executor

                t = time.perf_counter()
                ex = make_executor(ExecutorConfig(partitions=args.partitions))[0]
                part = cluster_contents(texts, cfg, Path(tmp) / "p", executor=ex)
                assert (part.cluster == res.cluster).all() and part.stats == res.stats, "partitioned clusters differ"
                rows.append((f"  the same, {args.partitions} partitions", cfg.lsh_params, prf(part.cluster >= 0, truth),
                             time.perf_counter() - t))
    if not args.no_baseline:
        t = time.perf_counter()
        rows.append(("datasketch recipe (LSH only)", None, prf(datasketch_recipe(texts, base), truth),
                     time.perf_counter() - t))
    print(f"{'method':48s} {'b x r':>8s} {'precision':>9s} {'recall':>7s} {'F1':>7s} {'flagged':>8s} {'time':>7s}")
    for name, br, m, dt in rows:
        brs = f"{br[0]}x{br[1]}" if br else "-"
        print(f"{name:48s} {brs:>8s} {m['precision']:9.4f} {m['recall']:7.4f} {m['f1']:7.4f} {m['flagged']:8d} {dt:6.1f}s")


if __name__ == "__main__":
    main()
