"""Stable hashes keyed by a record, never by arrival order (determinism across workers)."""

from __future__ import annotations

import xxhash

_U64 = float(1 << 64)


def record_key(repo_name: str, path: str) -> bytes:
    """The identity of a file inside a dump."""
    return f"{repo_name}\x00{path}".encode("utf-8", "surrogatepass")


def keyed_uniform(key: bytes, salt: str, seed: int = 0) -> float:
    """A uniform number in [0, 1) that depends only on (key, salt, seed).

    Used for probabilistic drops (CodeParrot drops config/test files with p=0.7) so that the
    same file gets the same decision whatever the order or the number of workers.
    """
    h = xxhash.xxh3_64_intdigest(salt.encode() + b"\x00" + key, seed=seed)
    return h / _U64
