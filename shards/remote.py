"""Shard directories (and tokenizer directories) named by fsspec URL, copied once into a local cache.

The reader needs random access with ``pread`` on many small blocks: over an object store each
would be a request, so a split named by URL (``s3://bucket/run/shards/train``) is copied into a
local directory first, as mosaicml-streaming does, and read from there. The copy is checked
against the index (every shard's size and content hash) and its index.json is written last, so
a copy cut short is never taken for a whole one; a second call finds it complete and copies
nothing. Several processes may copy into the same cache at once: every file is written to a
temporary name and renamed into place.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from shards.format import INDEX_NAME, ShardError, content_hash


def is_url(path: str | os.PathLike) -> bool:
    """A URL fsspec opens (``s3://``, ``gs://``, ``hf://``, ``memory://``); plain and ``file://`` paths are local."""
    head, sep, _ = os.fspath(path).partition("://")
    return bool(sep) and len(head) > 1 and head.lower() not in ("file", "local")


def cache_dir_for(url: str, cache_root: str | os.PathLike) -> Path:
    """The local directory a URL is copied to under ``cache_root``: ``<last name>-<hash of the URL>``."""
    key = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:12]
    return Path(cache_root) / f"{url.rstrip('/').rsplit('/', 1)[-1]}-{key}"


def _fs(url: str):
    import fsspec.core

    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:
        raise ShardError(f"{url}: its filesystem is not installed ({exc})") from None


def _put(dest: Path, data: bytes) -> None:
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dest)


def fetch_split(url: str, local: str | os.PathLike) -> Path:
    """Copy the shard directory at ``url`` (index.json and its shards) to ``local``, checked; ``local``."""
    fs, root = _fs(url)
    try:
        index_bytes = fs.cat_file(f"{root}/{INDEX_NAME}")
    except FileNotFoundError:
        raise ShardError(f"{url}/{INDEX_NAME}: no shard index; point to a directory written by ShardWriter") from None
    local = Path(local)
    if (local / INDEX_NAME).is_file() and (local / INDEX_NAME).read_bytes() == index_bytes:
        return local  # a complete copy of this very index
    try:
        index = json.loads(index_bytes)
        shards = [(s["file"], s["compressed_bytes"], s["hash"]) for s in index["shards"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ShardError(f"{url}/{INDEX_NAME}: not a shard index ({exc})") from None
    local.mkdir(parents=True, exist_ok=True)
    (local / INDEX_NAME).unlink(missing_ok=True)  # an older copy is incomplete until the new index lands
    for name, size, digest in shards:
        dest = local / name
        if dest.is_file() and dest.stat().st_size == size and content_hash(dest.read_bytes()) == digest:
            continue
        try:
            data = fs.cat_file(f"{root}/{name}")
        except FileNotFoundError:
            raise ShardError(f"{url}/{name}: shard listed in {INDEX_NAME} is missing") from None
        if len(data) != size or content_hash(data) != digest:
            raise ShardError(f"{url}/{name}: {len(data)} bytes that do not match {INDEX_NAME} (re-pack the directory)")
        _put(dest, data)
    _put(local / INDEX_NAME, index_bytes)
    return local


def fetch_dir(url: str, local: str | os.PathLike) -> Path:
    """Copy a small directory at ``url`` (a tokenizer) to ``local``: every file, then a marker; ``local``."""
    fs, root = _fs(url)
    local = Path(local)
    files = sorted(fs.find(root))
    if not files:
        raise ShardError(f"{url}: no files there")
    listing = "".join(f"{p[len(root) + 1:]}\t{fs.info(p).get('size')}\n" for p in files).encode()
    marker = local / ".complete"
    if marker.is_file() and marker.read_bytes() == listing:
        return local
    local.mkdir(parents=True, exist_ok=True)
    marker.unlink(missing_ok=True)
    for p in files:
        dest = local / p[len(root) + 1:]
        dest.parent.mkdir(parents=True, exist_ok=True)
        _put(dest, fs.cat_file(p))
    _put(marker, listing)
    return local
