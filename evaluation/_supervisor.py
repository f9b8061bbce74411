"""The in-sandbox supervisor: isolates itself, forks the program under resource limits, reports how it ended.

Run by evaluation.sandbox as ``python -I -S _supervisor.py SPEC_JSON`` (inside ``unshare`` where the
kernel allows it), never imported by the evaluator. It imports only the standard library. The program
text and the per-run token arrive on stdin, which is then replaced by /dev/null. The token stays in this
process: the program runs in a forked child that never holds the result descriptor, so a program that
exits early (``sys.exit(0)``, ``os._exit(0)``) or dies cannot produce the line the evaluator requires.
"""

import ctypes
import json
import os
import resource
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


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def isolate_filesystem(work: str, tmpfs_bytes: int) -> None:
    """Every mount read-only, a fresh size-limited tmpfs on ``work``, and the mounts locked.

    Runs in the new user+mount namespace that ``unshare`` made. The final unshare(CLONE_NEWUSER |
    CLONE_NEWNS) moves this process into a child user namespace that owns nothing: the kernel then
    locks the copied mounts, so the program cannot remount them writable again.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    attr = _MountAttr(MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, 0, 0, 0)
    _check(libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, b"/", AT_RECURSIVE, ctypes.byref(attr),
                        ctypes.sizeof(attr)), "mount_setattr(/, read-only)")
    _check(libc.mount(b"tmpfs", work.encode(), b"tmpfs", MS_NOSUID | MS_NODEV,
                      f"size={tmpfs_bytes},mode=0700".encode()), f"mount tmpfs on {work}")
    _check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS), "unshare(user, mount) to lock the mounts")


def _report(fd: int, record: dict) -> None:
    data = json.dumps(record).encode() + b"\n"
    while data:
        data = data[os.write(fd, data):]


def run_program(program: str, report_fd: int) -> None:
    """Execute the program in this (child) process and write how it ended to ``report_fd``."""
    import builtins

    me = os.getpid()
    record: dict
    try:
        code = compile(program, "<program>", "exec")
        exec(code, {"__name__": "__main__", "__builtins__": builtins})
        record = {"status": "returned"}
    except SystemExit as exc:
        record = {"status": "exit", "code": exc.code if isinstance(exc.code, int) else 1}
    except BaseException as exc:  # noqa: BLE001 - every way the program can fail is an outcome
        record = {"status": "raised", "type": type(exc).__name__, "errno": getattr(exc, "errno", None),
                  "message": str(exc)[:500]}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException as exc:  # noqa: BLE001 - e.g. the output hit RLIMIT_FSIZE while flushing
        if record["status"] == "returned":
            record = {"status": "raised", "type": type(exc).__name__, "errno": getattr(exc, "errno", None),
                      "message": str(exc)[:500]}
    if os.getpid() != me:  # a process the program forked: only the program's own process reports
        os._exit(0)
    _report(report_fd, record)


def main() -> None:
    spec = json.loads(sys.argv[1])
    payload = json.loads(sys.stdin.buffer.read())
    token, program = payload["token"], payload["program"]
    del payload
    null = os.open(os.devnull, os.O_RDONLY)  # stdin closed: the program reads EOF
    os.dup2(null, 0)
    os.close(null)
    result_fd = spec["result_fd"]
    try:
        if spec["isolate"]:
            isolate_filesystem(spec["work"], spec["tmpfs_bytes"])
        os.chdir(spec["work"])
    except OSError as exc:
        _report(result_fd, {"token": token, "setup_error": str(exc)})
        os._exit(0)

    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the program's process: limits first, then nothing of the supervisor's
        os.close(read_end)
        os.close(result_fd)
        os.environ.clear()
        for name, value in spec["limits"].items():
            resource.setrlimit(getattr(resource, name), (value, value))
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
    try:
        report = json.loads(raw.split(b"\n", 1)[0]) if raw else None
    except ValueError:
        report = None
    if os.WIFSIGNALED(status):
        ended = {"signal": os.WTERMSIG(status)}
    else:
        ended = {"exit": os.waitstatus_to_exitcode(status)}
    _report(result_fd, {"token": token, "report": report, "ended": ended})
    os._exit(0)


if __name__ == "__main__":
    main()
