"""Tests of preprocessing/dedup/{lsh,unionfind,index}.py: buckets, union-find, verified transitive clusters."""

from __future__ import annotations

import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from preprocessing.dedup.index import cluster_contents, size_histogram
from preprocessing.dedup.lsh import BandTables, bucket_pairs
from preprocessing.dedup.minhash import NearDedupConfig
from preprocessing.dedup.unionfind import UnionFind

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def read(name: str) -> str:
    return (STDLIB / name).read_text(encoding="utf-8")


def test_bucket_pairs_star_and_chain_are_linear():
    keys = np.array([5, 7, 5, 5, 9, 7], dtype=np.uint64)
    ords = np.arange(6, dtype=np.uint32)
    a, b = bucket_pairs(keys, ords)
    assert sorted(zip(a.tolist(), b.tolist())) == [(0, 2), (0, 3), (1, 5), (2, 3)]
    big_a, _ = bucket_pairs(np.zeros(100_000, np.uint64), np.arange(100_000, dtype=np.uint32))
    assert len(big_a) < 200_000  # 2(k-1) at most, never k^2


def test_union_find_is_transitive_and_roots_are_smallest():
    uf = UnionFind(10)
    uf.union_pairs(np.array([8, 3, 5, 1]), np.array([9, 8, 9, 2]))
    roots = uf.roots()
    assert roots.tolist() == [0, 1, 1, 3, 4, 3, 6, 7, 3, 3]
    with pytest.raises(ValueError, match="int32 ordinals"):
        UnionFind(2**31)


def test_union_find_batch_order_does_not_matter():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 5000, 4000), rng.integers(0, 5000, 4000)
    u1, u2 = UnionFind(5000), UnionFind(5000)
    u1.union_pairs(a, b)
    perm = rng.permutation(4000)
    for s in range(0, 4000, 333):
        u2.union_pairs(b[perm][s : s + 333], a[perm][s : s + 333])
    np.testing.assert_array_equal(u1.roots(), u2.roots())


def test_spilled_tables_yield_the_same_pairs(tmp_path):
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 50, size=(3000, 4)).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)

    def pairs(budget):
        t = BandTables(4, budget, tmp_path / f"s{budget}", partitions=8)
        for s in range(0, 3000, 250):
            t.add(np.arange(s, s + 250), keys[s : s + 250])
        out = sorted((band, x, y) for band, a, b in t.candidate_pairs() for x, y in zip(a.tolist(), b.tolist()))
        return out, t.spilled

    mem, spilled_mem = pairs(1 << 30)
    disk, spilled_disk = pairs(20_000)
    assert not spilled_mem and spilled_disk
    assert mem == disk


def near_duplicate_corpus() -> tuple[list[str], dict[str, int]]:
    """Real stdlib files plus edited, renamed and reordered copies of some of them."""
    names = ["textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "bisect.py", "colorsys.py", "keyword.py"]
    texts = [read(n) for n in names]
    base = texts[0]
    edited = base.replace("def dedent(text):", "def dedent(text):\n    # strip common leading whitespace\n", 1)
    renamed = re.sub(r"\bwidth\b", "line_width", base)
    parts = base.split("\ndef ")
    reordered = "\ndef ".join([parts[0]] + parts[:0:-1])
    shlex_edit = texts[1] + "\n\ndef extra_helper(value):\n    return split(value)\n"
    texts += [edited, renamed, reordered, shlex_edit]
    index = {name: i for i, name in enumerate(names + ["edited", "renamed", "reordered", "shlex_edit"])}
    return texts, index


def test_known_near_duplicates_are_clustered(tmp_path):
    texts, ix = near_duplicate_corpus()
    res = cluster_contents(texts, NearDedupConfig(), tmp_path)
    tw = res.cluster[ix["textwrap.py"]]
    assert tw == ix["textwrap.py"]  # cluster id = smallest ordinal
    for name in ("edited", "renamed", "reordered"):
        assert res.cluster[ix[name]] == tw, name
    assert res.cluster[ix["shlex_edit"]] == res.cluster[ix["shlex.py"]] == ix["shlex.py"]
    for name in ("fnmatch.py", "glob.py", "bisect.py", "colorsys.py", "keyword.py"):
        assert res.cluster[ix[name]] == -1, name
    # Default keep rule: first in input order.
    assert res.drop.tolist() == [False] * 7 + [True] * 4
    assert res.stats["clusters"] == 2 and res.stats["files_in_clusters"] == 6 and res.stats["removed"] == 4
    assert res.stats["cluster_size_histogram"] == {"2": 1, "3-4": 1}
    assert (res.similarity[[ix["edited"], ix["reordered"]]] > 0.95).all()


def token_text(lo: int, hi: int) -> str:
    return " ".join(f"ident{i}" for i in range(lo, hi))


@pytest.mark.parametrize("verify", ["signature", "exact"])
def test_clusters_are_transitive(tmp_path, verify):
    from preprocessing.dedup.minhash import MinHashSignature, estimated_jaccard

    # J(A,B) = J(B,C) = 172/228 = 0.75, J(A,C) = 144/256 = 0.56: A~B, B~C, A!~C at 0.7.
    a, b, c = token_text(0, 200), token_text(28, 228), token_text(56, 256)
    filler = [token_text(1000 * k, 1000 * k + 50) for k in range(1, 4)]
    cfg = NearDedupConfig(threshold=0.7, bands=64, rows=4, verify=verify)
    sig = MinHashSignature(cfg).signatures([x.encode() for x in (a, b, c)]).sig
    assert estimated_jaccard(sig[0], sig[2]) < 0.7 <= min(estimated_jaccard(sig[0], sig[1]), estimated_jaccard(sig[1], sig[2]))
    res = cluster_contents([a, *filler, b, c], cfg, tmp_path)
    assert res.cluster.tolist() == [0, -1, -1, -1, 0, 0]
    assert res.kept.tolist() == [0, -1, -1, -1, 0, 0]


def test_spill_path_gives_same_clusters_as_memory(tmp_path):
    texts, _ = near_duplicate_corpus()
    texts = texts * 30  # 330 files, 30 copies of each: big clusters spread over many chunks
    mem = cluster_contents(texts, NearDedupConfig(), tmp_path / "m", batch=64)
    disk = cluster_contents(texts, NearDedupConfig(memory_budget_mb=0.005, spill_partitions=4), tmp_path / "d", batch=7)
    assert disk.stats["spilled_to_disk"] and not mem.stats["spilled_to_disk"]
    np.testing.assert_array_equal(mem.cluster, disk.cluster)
    np.testing.assert_array_equal(mem.drop, disk.drop)
    assert not list((tmp_path / "d" / "spill").glob("*.npy"))  # spill files cleaned up


def test_keep_rules(tmp_path):
    base = read("textwrap.py")
    longer = base + "\n# one more comment line\n"
    texts = [base, longer, base.replace("\n\n", "\n", 5)]
    res = cluster_contents(texts, NearDedupConfig(keep="longest"), tmp_path / "l", scores=[len(t) for t in texts])
    assert res.kept.tolist() == [1, 1, 1] and res.drop.tolist() == [True, False, True]
    res = cluster_contents(texts, NearDedupConfig(keep="stars"), tmp_path / "s", scores=[3, 3, 1])
    assert res.kept.tolist() == [0, 0, 0]  # tie on score: first in input order


def test_bad_input_is_kept_and_counted(tmp_path):
    texts = ["", "x = 1", "\udcff\udcfe not utf8 " + token_text(0, 40), "\udcff\udcfe not utf8 " + token_text(0, 40), "a b c"]
    res = cluster_contents(texts, NearDedupConfig(), tmp_path)
    assert res.too_short == 3  # empty and short files: kept, never clustered
    assert res.cluster.tolist() == [-1, -1, 2, 2, -1]
    assert res.drop.tolist() == [False, False, False, True, False]


def test_many_identical_files_form_one_cluster_quickly(tmp_path):
    text = token_text(0, 30)
    res = cluster_contents([text] * 100_000, NearDedupConfig(), tmp_path, batch=10_000)
    assert res.stats["clusters"] == 1 and res.stats["largest_cluster"] == 100_000
    assert res.stats["removed"] == 99_999 and not res.drop[0]
    assert res.stats["candidate_pairs"] < 300_000  # linear, not quadratic


def test_size_histogram_bins():
    assert size_histogram(np.array([2, 2, 3, 4, 5, 9, 100])) == {"2": 2, "3-4": 2, "5-8": 1, "9-16": 1, "65-128": 1}
