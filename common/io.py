"""File helpers: atomic writes, JSON files, and inputs and outputs by fsspec URL.

A plain path (or ``file://``) takes the local fast path: builtin ``open``, ``os.replace``,
``os.rename`` — fsspec is not even imported. Any other URL (``memory://``, ``s3://``, ``gs://``,
``hf://`` ...) goes through fsspec's documented API (``fsspec.core.url_to_fs``, ``fs.open``,
``fs.mv``, ``fs.find``/``fs.glob``, ``fs.info``). Outputs to a URL are built in a local staging
directory and published when complete: on a filesystem with rename (local, memory) by uploading
to a temporary name and renaming it into place, on one without (object stores) by uploading the
files under their final names and writing :data:`COMPLETE_MARKER` last, which readers check.
"""

from __future__ import annotations

import json
import os
import posixpath
from pathlib import Path
from typing import IO, Any

Location = Path | str
"""A local path (a Path) or a URL that is not ``file://`` (a str): what :func:`location` gives."""

COMPLETE_MARKER = "_COMPLETE"
"""Written last into a stage's output directory on a filesystem without rename (object stores):
the directory is complete only when it holds this file (its names, one a line)."""
RENAME_PROTOCOLS = frozenset({"file", "local", "memory"})
"""Filesystems whose rename (``fs.mv``) publishes a directory at once: the others (s3, gs, az, hf,
...) copy and delete object by object, so they get the completion marker instead."""
PROCESS_LOCAL_PROTOCOLS = frozenset({"memory"})
"""Filesystems that live in one process's memory: no worker process can see them."""
INSTALL_HINTS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs",
                 "adl": "adlfs", "hf": "huggingface_hub", "http": "aiohttp", "https": "aiohttp"}


class FilesystemError(ValueError):
    """A URL whose filesystem cannot be used (not installed, no credentials, unreachable): one line, naming it."""


def protocol_of(path: Location) -> str | None:
    """The URL's protocol (``s3`` for ``s3://b/k``); None for a plain path."""
    head, sep, _ = str(path).partition("://")
    if sep and len(head) > 1 and all(c.isalnum() or c in "+-._:" for c in head):  # (chained: simplecache::s3)
        return head.lower()
    return None


def is_url(path: Location) -> bool:
    """Whether ``path`` is a URL that fsspec opens (``file://`` is not: it is a local path)."""
    proto = protocol_of(path)
    return proto is not None and proto not in ("file", "local")


def location(path: str | os.PathLike) -> Location:
    """A local Path for a plain path or ``file://`` URL, else the URL (a str)."""
    s = os.fspath(path)
    proto = protocol_of(s)
    if proto in ("file", "local"):
        return Path(s.partition("://")[2])
    return s if proto is not None else Path(s)


def join(base: Location, *parts: str) -> Location:
    """``base / part / ...`` for a local path or a URL."""
    base = location(base) if not isinstance(base, Path) else base
    if isinstance(base, Path):
        return base.joinpath(*parts)
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts if p)])


def basename(path: Location) -> str:
    """The last component of a path or URL."""
    return posixpath.basename(str(path).rstrip("/")) if is_url(path) else Path(path).name


def _fail(url: Location, exc: BaseException) -> FilesystemError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return FilesystemError(f"{url}: {text}")


def filesystem(url: Location) -> tuple[Any, str]:
    """``(fs, path inside it)`` for a URL (:func:`fsspec.core.url_to_fs`), as a one-line
    FilesystemError naming the URL when its filesystem is not installed or not known."""
    proto = protocol_of(url) or "file"
    try:
        import fsspec.core
    except ImportError:  # pragma: no cover - fsspec is a dependency
        raise FilesystemError(f"{url}: reading URLs needs fsspec: pip install fsspec") from None
    try:
        return fsspec.core.url_to_fs(str(url))
    except ImportError as exc:
        hint = INSTALL_HINTS.get(proto)
        how = f"pip install {hint}" if hint else "install the fsspec implementation for it"
        raise FilesystemError(f"{url}: the {proto}:// filesystem is not installed ({exc}): {how}") from None
    except ValueError as exc:
        raise FilesystemError(f"{url}: unknown filesystem protocol {proto!r} ({exc})") from None
    except Exception as exc:  # an implementation's own error while it is set up (credentials, config)
        raise _fail(url, exc) from None


def _remote(url: str, op: str, *args: Any, **kwargs: Any) -> Any:
    """``fs.<op>(path, ...)`` on a URL; a missing file stays FileNotFoundError (with the URL as
    its filename), any other failure (no credentials, unreachable) is one FilesystemError line."""
    fs, p = filesystem(url)
    try:
        return getattr(fs, op)(p, *args, **kwargs)
    except FileNotFoundError as exc:
        raise FileNotFoundError(2, exc.strerror or "No such file or directory", url) from None
    except (FilesystemError, IsADirectoryError, NotADirectoryError):
        raise
    except Exception as exc:  # boto/aiohttp/google-auth errors are not OSErrors: named in one line
        raise _fail(url, exc) from None


def open_file(path: Location, mode: str = "rb") -> IO[Any]:
    """Open a local path with the builtin ``open`` (the fast path), a URL with ``fs.open``."""
    if not is_url(path):
        return open(location(path) if isinstance(path, str) else path, mode)
    return _remote(str(path), "open", mode)


def exists(path: Location) -> bool:
    return os.path.exists(location(path)) if not is_url(path) else bool(_remote(str(path), "exists"))


def is_dir(path: Location) -> bool:
    return os.path.isdir(location(path)) if not is_url(path) else bool(_remote(str(path), "isdir"))


def is_file(path: Location) -> bool:
    return os.path.isfile(location(path)) if not is_url(path) else bool(_remote(str(path), "isfile"))


def _urls(fs: Any, paths: list[str]) -> list[str]:
    return sorted(fs.unstrip_protocol(p) for p in paths)


def find_files(url: str) -> list[str]:
    """Every file under a directory URL (recursively), as URLs, sorted."""
    fs, _ = filesystem(url)
    return _urls(fs, _remote(url, "find"))


def glob_files(url: str) -> list[str]:
    """The files a glob URL matches, as URLs, sorted."""
    fs, _ = filesystem(url)
    return _urls(fs, [p for p in _remote(url, "glob") if fs.isfile(p)])


def file_info(path: Location) -> tuple[int, str]:
    """(size, a change stamp) of a file: mtime for local files, else what the filesystem's
    ``fs.info`` offers (mtime, LastModified, ETag, created)."""
    if not is_url(path):
        st = os.stat(location(path))
        return st.st_size, str(st.st_mtime_ns)
    info = _remote(str(path), "info")
    stamp = next((info[k] for k in ("mtime", "LastModified", "ETag", "etag", "md5Hash", "created") if info.get(k)), "")
    return int(info.get("size") or 0), str(stamp)


def check_visible(paths: list[Location], workers: int, executor: str = "local") -> None:
    """Refuse, before any work, to hand worker processes a path they cannot see (a filesystem
    that lives in this process's memory)."""
    if workers <= 1 and executor == "local":
        return  # the map runs in this process
    for p in paths:
        if protocol_of(p) in PROCESS_LOCAL_PROTOCOLS:
            raise FilesystemError(
                f"{p}: the workers cannot see it ({protocol_of(p)}:// lives in this process's memory); "
                "use --workers 1 --executor local, or a filesystem every worker can read")


def tmp_path_for(path: str | Path) -> Path:
    """The temporary name a file is written under before it is renamed into place."""
    p = Path(path)
    return p.with_name(f".{p.name}.{os.getpid()}.tmp")


def has_rename(url: Location) -> bool:
    """Whether the filesystem publishes by rename (local, memory) rather than with a completion marker."""
    return (protocol_of(url) or "file") in RENAME_PROTOCOLS


def write_bytes_atomic(path: Location, data: bytes) -> None:
    """Write a file so that readers never see it partial: a temporary name renamed into place
    (local, memory); on an object store one PUT, which is atomic per object."""
    if is_url(path):
        url = str(path)
        parent = posixpath.dirname(url.rstrip("/"))
        if has_rename(url):
            tmp = join(parent, f".{basename(url)}.{os.getpid()}.tmp")
            with open_file(tmp, "wb") as f:
                f.write(data)
            fs, _ = filesystem(url)
            fs.mv(filesystem(tmp)[1], filesystem(url)[1])
        else:
            with open_file(url, "wb") as f:
                f.write(data)
        return
    p = location(path) if isinstance(path, str) else path
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_path_for(p)
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, p)


def write_json_atomic(path: Location, obj: Any) -> None:
    """Write JSON to a temporary file and rename it, so readers never see a partial file."""
    write_bytes_atomic(path, (json.dumps(obj, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode())


def read_json(path: Location) -> Any:
    with open_file(path, "rb") as f:
        return json.loads(f.read().decode("utf-8"))


def remove_stale_tmp(directory: str | Path) -> int:
    """Delete temporary files a killed run left behind; returns how many."""
    d = Path(directory)
    n = 0
    if d.is_dir():
        for p in d.glob(".*.tmp"):
            p.unlink(missing_ok=True)
            n += 1
    return n


def remove_tree(path: str | Path) -> None:
    """Delete a directory tree if it exists, ignoring what cannot be deleted (``shutil.rmtree(path,
    ignore_errors=True)`` without importing shutil, which imports bz2 and lzma: ~6 ms a process)."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            try:
                os.unlink(os.path.join(root, name))
            except OSError:
                pass
        for name in dirs:
            full = os.path.join(root, name)
            try:
                os.unlink(full) if os.path.islink(full) else os.rmdir(full)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def staging_dir(out_dir: Location) -> Path:
    """An empty local directory where a stage builds its output directory: ``<out_dir>.tmp-<pid>``
    next to a local ``out_dir``; for a URL, the same under ``$TMPDIR/cp-staging/`` (uploaded by
    :func:`publish_dir`: a URL's stage needs local disk for its own output).

    Staging directories left by killed runs (``<out_dir>.tmp-*``, ``<out_dir>.old-*``) are removed first.
    """
    if is_url(out_dir):  # built here, uploaded by publish_dir: $TMPDIR/cp-staging/<name>-<hash of the URL>
        import hashlib
        import tempfile

        key = hashlib.sha256(str(out_dir).encode()).hexdigest()[:12]
        out_dir = Path(tempfile.gettempdir()) / "cp-staging" / f"{basename(out_dir)}-{key}"
    out_dir = location(out_dir) if isinstance(out_dir, str) else out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in [*out_dir.parent.glob(f"{out_dir.name}.tmp-*"), *out_dir.parent.glob(f"{out_dir.name}.old-*")]:
        remove_tree(stale)
    tmp = out_dir.with_name(f"{out_dir.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    return tmp


def publish_dir(tmp: Path, out_dir: Location, rename: bool | None = None) -> None:
    """Move a complete staging directory to ``out_dir``, replacing an older one (never a half-written mix).

    A URL is published by :func:`publish_remote` (``rename``: override the filesystem's kind, for tests).
    """
    if is_url(out_dir):
        try:
            publish_remote(tmp, str(out_dir), has_rename(out_dir) if rename is None else rename)
        finally:
            remove_tree(tmp)
        return
    out_dir = location(out_dir) if isinstance(out_dir, str) else out_dir
    if out_dir.exists():
        old = out_dir.with_name(f"{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
        tmp.rename(out_dir)
        remove_tree(old)
    else:
        tmp.rename(out_dir)


def publish_remote(tmp: Path, url: str, rename: bool) -> None:
    """Upload the local directory ``tmp`` as ``url``.

    With rename (memory): to ``<url>.tmp-<pid>``, then renamed into place (``fs.mv``), the old
    one renamed away first and deleted after. Without (object stores): the marker goes first, then
    the old objects, then the files are put under their final names and :data:`COMPLETE_MARKER`
    (their names) last; a directory without it is incomplete to :func:`is_complete`.
    """
    fs, root = filesystem(url)
    files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())

    def put_all(dest: str) -> None:
        for rel in files:
            fs.makedirs(posixpath.dirname(f"{dest}/{rel}"), exist_ok=True)
            fs.put_file(str(tmp / rel), f"{dest}/{rel}")

    try:
        if rename:
            stage = f"{root}.tmp-{os.getpid()}"
            if fs.exists(stage):
                fs.rm(stage, recursive=True)
            fs.makedirs(stage, exist_ok=True)
            put_all(stage)
            if fs.exists(root):
                old = f"{root}.old-{os.getpid()}"
                fs.mv(root, old, recursive=True)
                fs.mv(stage, root, recursive=True)
                fs.rm(old, recursive=True)
            else:
                fs.mv(stage, root, recursive=True)
        else:
            marker = f"{root}/{COMPLETE_MARKER}"
            if fs.exists(marker):
                fs.rm_file(marker)  # from here on the directory reads as incomplete
            if fs.exists(root):
                fs.rm(root, recursive=True)
            fs.makedirs(root, exist_ok=True)
            put_all(root)
            with fs.open(marker, "wb") as f:
                f.write("".join(f"{rel}\n" for rel in files).encode())
    except FilesystemError:
        raise
    except Exception as exc:  # no credentials, unreachable, quota: named in one line
        raise _fail(url, exc) from None


def is_complete(out_dir: Location) -> bool:
    """Whether a published stage directory is there whole: it exists (local, memory: published by
    rename), and on an object store also holds :data:`COMPLETE_MARKER`."""
    if not is_url(out_dir) or has_rename(out_dir):
        return is_dir(out_dir)
    return is_file(join(out_dir, COMPLETE_MARKER))


def published_files(out_dir: Location, pattern: str) -> list[Location]:
    """The files matching ``pattern`` (a glob of names) in a published stage directory, sorted;
    none when it is missing or, on an object store, incomplete (no :data:`COMPLETE_MARKER`)."""
    if not is_url(out_dir):
        d = location(out_dir) if isinstance(out_dir, str) else out_dir
        return sorted(p for p in d.glob(pattern) if p.is_file())
    if not is_complete(out_dir):
        return []
    return glob_files(str(join(out_dir, pattern)))


def read_text(path: Location) -> str:
    """A text file's contents (UTF-8), local or by URL."""
    with open_file(path, "rb") as f:
        return f.read().decode("utf-8")
