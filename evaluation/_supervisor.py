"""The in-sandbox supervisor: isolates itself, forks the program under resource limits, reports how it ended.

Run by evaluation.sandbox as ``python -I -S -c SOURCE WORK ISOLATE RESULT_FD TMPFS_BYTES LIMITS`` (inside
``unshare`` where the kernel allows it), never imported by the evaluator. It imports as little of the
standard library as it can (``json`` alone would double its start-up time, for ``re`` and ``enum``):
results are ``repr()`` lines that the evaluator parses. The per-run token and the program text arrive
on stdin, which is then replaced by /dev/null. The token stays in this
process: the program runs in a forked child that never holds the result descriptor, so a program that
exits early (``sys.exit(0)``, ``os._exit(0)``) or dies cannot produce the line the evaluator requires.
"""

import os
import sys

# Linux constants (uapi headers): mount_setattr(2) is syscall 442 on every architecture since 5.12.
SYS_MOUNT_SETATTR = 442
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MS_NOSUID = 0x2
MS_NODEV = 0x4
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000




def isolate_filesystem(work: str, tmpfs_bytes: int) -> None:
    """Every mount read-only, a fresh size-limited tmpfs on ``work``, and the mounts locked.

    Runs in the new user+mount namespace that ``unshare`` made. The final unshare(CLONE_NEWUSER |
    CLONE_NEWNS) moves this process into a child user namespace that owns nothing: the kernel then
    locks the copied mounts, so the program cannot remount them writable again.
    """
    import ctypes

    class MountAttr(ctypes.Structure):
        _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                    ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]

    def _check(ret: int, what: str) -> None:
        if ret != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}")

    libc = ctypes.CDLL(None, use_errno=True)
    attr = MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    _check(libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr),
                        ctypes.sizeof(attr)), "mount_setattr(/, read-only)")
    _check(libc.mount(b"tmpfs", work.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                      f"size={tmpfs_bytes},mode=0700".encode()), f"mount tmpfs on {work}")
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(user, mount) to lock the mounts")


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data):]


def run_program(program: str, report_fd: int) -> None:
    """Execute the program in this (child) process and write how it ended to ``report_fd`` as the repr of
    ("returned",), ("exit", code) or ("raised", type name, errno, message)."""
    import builtins

    me = os.getpid()
    record: tuple
    try:
        code = compile(program, "<program>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
        record = ("returned",)
    except SystemExit as exc:
        record = ("exit", exc.code if isinstance(exc.code, int) else 1)
    except BaseException as exc:  # noqa: BLE001 - every way the program can fail is an outcome
        record = _raised(exc)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException as exc:  # noqa: BLE001 - e.g. the output hit RLIMIT_FSIZE while flushing
        if record[0] == "returned":
            record = _raised(exc)
    if os.getpid() != me:  # a process the program forked: only the program's own process reports
        os._exit(0)
    _write_all(report_fd, repr(record).encode("utf-8", "backslashreplace") + b"\n")


def _raised(exc: BaseException) -> tuple:
    errno = getattr(exc, "errno", None)
    return ("raised", type(exc).__name__, errno if isinstance(errno, int) else None, str(exc)[:500])


def main() -> None:
    work, isolate, result_fd, tmpfs_bytes, limits = sys.argv[1:6]
    result_fd = int(result_fd)
    data = sys.stdin.buffer.read()
    token, program = data[:32], data[33:].decode("utf-8", "surrogatepass")
    del data
    null = os.open(os.devnull, os.O_RDONLY)  # stdin closed: the program reads EOF
    os.dup2(null, 0)
    os.close(null)
    try:
        if isolate == "1":
            isolate_filesystem(work, int(tmpfs_bytes))
        os.chdir(work)
    except OSError as exc:
        _write_all(result_fd, token + b" setup_error 0 " + repr(str(exc)).encode() + b"\n")
        os._exit(0)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the program's process: limits first, then nothing of the supervisor's
        import resource

        os.close(read_end)
        os.close(result_fd)
        os.environ.clear()
        for item in limits.split(","):
            name, value = item.split("=")
            resource.setrlimit(getattr(resource, name), (int(value), int(value)))
        run_program(program, write_end)
        os._exit(0)

    os.close(write_end)
    del program
    _, status = os.waitpid(pid, 0)
    os.set_blocking(read_end, False)
    try:
        raw = os.read(read_end, 1 << 16)
    except BlockingIOError:  # a grandchild holds the pipe open and nothing was written
        raw = b""
    report = raw.split(b"\n", 1)[0] or b"None"
    if os.WIFSIGNALED(status):
        ended = b"signal %d" % os.WTERMSIG(status)
    else:
        ended = b"exit %d" % os.waitstatus_to_exitcode(status)
    _write_all(result_fd, token + b" " + ended + b" " + report + b"\n")
    os._exit(0)


if __name__ == "__main__":
    main()
