"""Union-find over file ordinals as one int32 array, with vectorised (batch) unions.

Roots are always the smallest ordinal of their component: a union hooks the larger root
under the smaller one, so ``parent[i] <= i`` and the structure has no cycles. Batch unions
repeat "find both roots, hook max under min, compress" until every pair shares a root; the
result (the partition) depends only on the set of pairs, not on their order.
"""

from __future__ import annotations

import numpy as np


class UnionFind:
    """Disjoint sets over ``0..n-1``; 4 bytes per element."""

    def __init__(self, n: int):
        if n >= 2**31:
            raise ValueError(f"UnionFind holds at most 2**31 - 1 elements (int32 ordinals), got {n}")
        self.parent = np.arange(n, dtype=np.int32)

    def __len__(self) -> int:
        return len(self.parent)

    def find(self, x: np.ndarray) -> np.ndarray:
        """Roots of the elements ``x`` (vectorised, compresses the paths it walks)."""
        x = np.asarray(x, dtype=np.int64)
        r = self.parent[x]
        while True:
            up = self.parent[r]
            moved = up != r
            if not moved.any():
                break
            r = np.where(moved, up, r)
        self.parent[x] = r
        return r

    def union_pairs(self, a: np.ndarray, b: np.ndarray) -> None:
        """Merge the sets of ``a[i]`` and ``b[i]`` for every i."""
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        while len(a):
            ra, rb = self.find(a), self.find(b)
            cross = ra != rb
            if not cross.any():
                return
            a, b, ra, rb = a[cross], b[cross], ra[cross], rb[cross]
            hi, lo = np.maximum(ra, rb), np.minimum(ra, rb)
            # Several pairs may hook the same root: keep the smallest target; the others
            # stay cross pairs and are joined in the next round.
            np.minimum.at(self.parent, hi, lo.astype(np.int32))

    def roots(self) -> np.ndarray:
        """Root of every element (fully compresses the array)."""
        p = self.parent
        while True:
            up = p[p]
            if np.array_equal(up, p):
                return p
            p[:] = up
