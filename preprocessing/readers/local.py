"""Local repositories and the embedded default (the running Python installation) as dumps."""

from __future__ import annotations

import email
import os
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from preprocessing.readers.base import InputError, Reader, check_content
from preprocessing.record import CodeFile, Rejected

_LICENSE_FILE = re.compile(r"^(LICEN[CS]E|COPYING|COPYRIGHT|UNLICENSE)([-._].*)?$", re.IGNORECASE)
_SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".tox", ".venv", ".mypy_cache", ".pytest_cache"}


@dataclass
class FilesUnit:
    """A batch of files of one repository: read and decoded in a worker."""

    repo_name: str
    license: str | None
    root: str
    paths: list[str] = field(default_factory=list)  # relative to root, '/'-separated

    def __len__(self) -> int:
        return len(self.paths)

    def head(self, n: int) -> FilesUnit:
        return FilesUnit(self.repo_name, self.license, self.root, self.paths[:n])


def read_file_record(unit: FilesUnit, rel: str, max_bytes: int) -> CodeFile | Rejected:
    full = os.path.join(unit.root, rel)
    try:
        size = os.path.getsize(full)
        if size > max_bytes:
            return Rejected("too_large", full, 0, size)
        with open(full, "rb") as f:
            data = f.read()
    except OSError as exc:
        return Rejected("unreadable", full, 0, 0, detail=exc.strerror or str(exc))
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected("binary" if b"\x00" in data else "invalid_utf8", full, 0, len(data))
    reason = check_content(content, len(data), max_bytes)
    if reason:
        return Rejected(reason, full, 0, len(data))
    return CodeFile(content=content, repo_name=unit.repo_name, path=rel, license=unit.license,
                    extra={"size": len(data)}, source=full, line=0)


def _walk_files(root: Path, extensions: tuple[str, ...]) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in filenames:
            if name.endswith(extensions):
                out.append(os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/"))
    return sorted(out)


def _batched(unit_args: tuple, paths: list[str], n: int) -> Iterator[FilesUnit]:
    for i in range(0, len(paths), n):
        yield FilesUnit(*unit_args, paths=paths[i:i + n])


def _fingerprint_tree(entries: list[tuple[str, list[str]]]) -> str:
    import hashlib  # here, as in readers/hf.py and manifest.py: the readers' import stays without OpenSSL (~4 ms)

    h = hashlib.sha256()
    for root, rels in entries:
        for rel in rels:
            try:
                st = os.stat(os.path.join(root, rel))
                h.update(f"{root}/{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            except OSError:
                h.update(f"{root}/{rel}\0missing\n".encode())
    return h.hexdigest()[:16]


def detect_repo_license(root: Path) -> str | None:
    """License of a repository checkout: LICENSE/COPYING files, then package metadata."""
    from preprocessing.licenses import detect_license_text, license_from_metadata, normalize_license

    try:
        names = sorted(os.listdir(root))
    except OSError:
        return None
    for name in names:
        if _LICENSE_FILE.match(name) and (root / name).is_file():
            try:
                text = (root / name).read_text(encoding="utf-8", errors="replace")[:100_000]
            except OSError:
                continue
            lic = detect_license_text(text)
            if lic:
                return lic
    for meta_name in ("PKG-INFO", "METADATA"):
        if (root / meta_name).is_file():
            msg = email.message_from_string((root / meta_name).read_text(encoding="utf-8", errors="replace"))
            lic = license_from_metadata(msg)
            if lic:
                return lic
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        try:
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        except (tomllib.TOMLDecodeError, UnicodeDecodeError):
            project = {}
        lic = project.get("license")
        if isinstance(lic, dict):
            lic = lic.get("text")
        if isinstance(lic, str) and normalize_license(lic):
            return normalize_license(lic)
        for classifier in project.get("classifiers", []):
            if classifier.startswith("License ::") and normalize_license(classifier):
                return normalize_license(classifier)
    setup_cfg = root / "setup.cfg"
    if setup_cfg.is_file():
        m = re.search(r"^license\s*=\s*(.+)$", setup_cfg.read_text(encoding="utf-8", errors="replace"), re.M)
        if m and normalize_license(m.group(1).strip()):
            return normalize_license(m.group(1).strip())
    return None


class LocalReposReader(Reader):
    """Directories of repositories: a directory that is itself a checkout (has .git) is one repo,
    otherwise each top-level folder is one repo. License from LICENSE/COPYING/package metadata."""

    name = "local"
    listing = ("_repos",)

    def __init__(self, dirs: list[str] | str, extensions: list[str] | None = None,
                 batch_records: int = 256, max_file_bytes: int = 10 << 20):
        self.dirs = [Path(d) for d in ([dirs] if isinstance(dirs, (str, Path)) else dirs)]
        for d in self.dirs:
            if not d.is_dir():
                raise InputError(f"input directory not found: {str(d)!r}")
        self.extensions = tuple(extensions or [".py"])
        self.batch_records = batch_records
        self.max_file_bytes = max_file_bytes
        self._warnings: list[str] = []
        self._repos: list[tuple[str, Path]] | None = None

    def repos(self) -> list[tuple[str, Path]]:
        if self._repos is None:
            repos = []
            for d in self.dirs:
                if (d / ".git").exists():
                    repos.append((d.resolve().name, d))
                else:
                    repos.extend((c.name, c) for c in sorted(d.iterdir()) if c.is_dir() and c.name not in _SKIP_DIRS)
            if not repos:
                raise InputError(f"no repositories found in {', '.join(map(str, self.dirs))} (expected one folder per repository)")
            self._repos = repos
        return self._repos

    def fingerprint(self) -> str:
        return _fingerprint_tree([(str(root), _walk_files(root, self.extensions)) for _, root in self.repos()])

    def units(self) -> Iterator[FilesUnit]:
        any_file = False
        for name, root in self.repos():
            files = _walk_files(root, self.extensions)
            if not files:
                self._warnings.append(f"{root}: repository has no {'/'.join(self.extensions)} files")
                continue
            any_file = True
            yield from _batched((name, detect_repo_license(root), str(root)), files, self.batch_records)
        if not any_file:
            raise InputError(f"no {'/'.join(self.extensions)} files in {', '.join(map(str, self.dirs))}")

    def decode(self, unit: FilesUnit) -> Iterator[CodeFile | Rejected]:
        for rel in unit.paths:
            yield read_file_record(unit, rel, self.max_file_bytes)


class PythonEnvReader(Reader):
    """The embedded default: the running interpreter's own sources as a dump.

    The standard library is the repository ``python/cpython`` (PSF-2.0); each installed
    distribution in site-packages is one repository named after it, its license read from its
    metadata (License-Expression, License, classifiers) or its license files. Works offline.
    """

    name = "pyenv"
    listing = ("_plan",)

    def __init__(self, extensions: list[str] | None = None, include_stdlib: bool = True,
                 include_site_packages: bool = True, batch_records: int = 256, max_file_bytes: int = 10 << 20):
        self.extensions = tuple(extensions or [".py"])
        self.include_stdlib = include_stdlib
        self.include_site_packages = include_site_packages
        self.batch_records = batch_records
        self.max_file_bytes = max_file_bytes
        self._warnings: list[str] = []
        self._plan: list[tuple[str, str | None, str, list[str]]] | None = None

    def plan(self) -> list[tuple[str, str | None, str, list[str]]]:
        """(repo_name, license, root, files) for the stdlib and every distribution, sorted."""
        if self._plan is not None:
            return self._plan
        from preprocessing.licenses import license_from_distribution

        paths = sysconfig.get_paths()
        site_dirs = {os.path.realpath(paths["purelib"]), os.path.realpath(paths["platlib"])}
        plan: list[tuple[str, str | None, str, list[str]]] = []
        if self.include_stdlib:
            stdlib = Path(paths["stdlib"])
            files = [f for f in _walk_files(stdlib, self.extensions)
                     if not f.startswith(("site-packages/", "dist-packages/"))]
            plan.append(("python/cpython", "PSF-2.0", str(stdlib), files))
        if self.include_site_packages:
            from importlib import metadata  # ~12 ms, only for the embedded default

            seen: set[str] = set()
            dists = []
            for dist in metadata.distributions(path=[p for p in sys.path if os.path.realpath(p) in site_dirs]):
                name = (dist.metadata["Name"] or "").strip()
                key = re.sub(r"[-_.]+", "-", name).lower()
                if not key or key in seen:
                    continue
                seen.add(key)
                dists.append((key, dist))
            for key, dist in sorted(dists):
                root = Path(dist.locate_file(""))
                files = sorted({str(f).replace(os.sep, "/") for f in (dist.files or [])
                                if str(f).endswith(self.extensions) and not str(f).startswith("..")})
                files = [f for f in files if os.path.isfile(root / f)]
                if files:
                    plan.append((key, license_from_distribution(dist), str(root), files))
        if not any(files for *_, files in plan):
            raise InputError(f"no {'/'.join(self.extensions)} files found in the Python installation {sys.prefix}")
        self._plan = plan
        return plan

    def fingerprint(self) -> str:
        return _fingerprint_tree([(root, files) for _, _, root, files in self.plan()])

    def units(self) -> Iterator[FilesUnit]:
        for name, lic, root, files in self.plan():
            yield from _batched((name, lic, root), files, self.batch_records)

    def decode(self, unit: FilesUnit) -> Iterator[CodeFile | Rejected]:
        for rel in unit.paths:
            yield read_file_record(unit, rel, self.max_file_bytes)
