"""Stable hashes keyed by a record, never by arrival order (determinism across workers)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import xxhash

_U64 = float(1 << 64)


def record_key(repo_name: str, path: str) -> bytes:
    """The identity of a file inside a dump."""
    return f"{repo_name}\x00{path}".encode("utf-8", "surrogatepass")


def record_keys(names: Iterable[tuple[str, str]]) -> list[bytes]:
    """``[record_key(repo_name, path) for repo_name, path in names]``, without a call per record."""
    return [f"{repo}\x00{path}".encode("utf-8", "surrogatepass") for repo, path in names]


def record_keys_of(records: Iterable[Any]) -> list[bytes]:
    """``[record_key(r.repo_name, r.path) for r in records]`` in one pass."""
    return [f"{r.repo_name}\x00{r.path}".encode("utf-8", "surrogatepass") for r in records]


def record_key_hashes(records: Iterable[Any]) -> list[int]:
    """``[xxh3_64_intdigest(record_key(r.repo_name, r.path)) for r in records]`` in one pass (the
    ranks of report examples)."""
    digest = xxhash.xxh3_64_intdigest
    return [digest(f"{r.repo_name}\x00{r.path}".encode("utf-8", "surrogatepass")) for r in records]


def keyed_uniforms(keys: Iterable[bytes], salt: str, seed: int = 0) -> list[float]:
    """``[keyed_uniform(key, salt, seed) for key in keys]``, without a call per key."""
    prefix, digest = salt.encode() + b"\x00", xxhash.xxh3_64_intdigest
    return [digest(prefix + key, seed=seed) / _U64 for key in keys]


def keyed_uniform(key: bytes, salt: str, seed: int = 0) -> float:
    """A uniform number in [0, 1) that depends only on (key, salt, seed).

    Used for probabilistic drops (CodeParrot drops config/test files with p=0.7) so that the
    same file gets the same decision whatever the order or the number of workers.
    """
    h = xxhash.xxh3_64_intdigest(salt.encode() + b"\x00" + key, seed=seed)
    return h / _U64
