"""The sandbox against hostile programs: each ends as a failed sample with its reason, nothing around it changes."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import stat
import tempfile
from pathlib import Path

import pytest

from evaluation.problems import Problem, build_program
from evaluation.sandbox import OUTPUT_HEAD, Sandbox, SandboxLimits, detect_isolation

# A HumanEval-shaped problem whose test fails unless the completion really ran to the end.
PROBLEM = Problem("demo/0", "def add(a, b):\n", "def check(candidate):\n    assert candidate(2, 3) == 5\n", "add")


@pytest.fixture(scope="module")
def isolation():
    return detect_isolation()


@pytest.fixture
def area():
    """A world-writable directory in the temp dir with a file in it: only the sandbox can protect it.

    Also the scratch root of the test's sandbox, so leftovers (files, processes) can be looked for by path.
    """
    root = Path(tempfile.mkdtemp(prefix="cp-test-sandbox-"))
    root.chmod(0o777)
    victim = root / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o666)
    scratch_root = root / "scratch"
    scratch_root.mkdir()
    scratch_root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def needs_namespaces_or_another_user(isolation, what: str) -> None:
    """Without namespaces, only running as another user (root's `nobody`) protects the evaluator's files
    and /proc/PID/environ; as the evaluator's own user nothing does, so the test does not apply."""
    if not isolation.namespaces and isolation.user is None:
        pytest.skip(f"{what}: no namespaces here ({isolation.reason}) and the sandbox runs as this user")


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root with its mode, size, mtime and content hash (the scratch root's own entries
    excluded: the sandbox creates and removes its scratch directories there)."""
    out = {}
    for path in sorted(root.rglob("*")):
        if path == root / "scratch":
            continue
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else ""
        out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns, digest)
    return out


def processes_mentioning(text: str) -> list[int]:
    """PIDs whose command line contains text (the sandbox's command line names its scratch directory)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if text.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                pass
    return found


def run_contained(area: Path, completion: str, **limits):
    """Run PROBLEM with ``completion`` and assert that nothing outside the scratch directory changed,
    that the scratch directory is gone and that no process of the sandbox is left."""
    before = snapshot(area)
    sandbox = Sandbox(SandboxLimits(**{"timeout_s": 2.0, **limits}), scratch_root=str(area / "scratch"))
    result = sandbox.run(build_program(PROBLEM, completion))
    assert snapshot(area) == before
    assert list((area / "scratch").iterdir()) == []
    assert processes_mentioning(str(area / "scratch")) == []
    assert (area / "victim.txt").read_text() == "precious\n"
    return result


def test_a_correct_completion_passes_and_a_wrong_one_fails(area):
    assert run_contained(area, "    return a + b\n").outcome == "passed"
    assert run_contained(area, "    return a - b\n").outcome == "failed: AssertionError"


def test_isolation_is_described(isolation):
    line = isolation.describe()
    assert line.startswith("sandbox: ")
    if not isolation.namespaces:
        assert "WEAKER ISOLATION" in line and "NO network" in line


def test_infinite_loop_is_a_timeout(area):
    result = run_contained(area, "    while True:\n        pass\n", timeout_s=1.0)
    assert result.outcome == "timeout"
    assert result.seconds < 3


def test_10gb_allocation_is_memory(area):
    result = run_contained(area, "    return a + b\nblob = bytearray(10 * 1024 ** 3)\n")
    assert result.outcome == "memory"


def test_fork_bomb_is_contained(area):
    result = run_contained(area, "    return a + b\nimport os\nwhile True:\n    os.fork()\n",
                           timeout_s=1.5, max_processes=8)
    assert result.outcome == "failed: BlockingIOError"  # RLIMIT_NPROC stopped it, not the clock
    assert result.seconds < 1.5
    # and the machine still forks
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0


def test_writing_a_10gb_file_hits_the_file_size_limit(area):
    program = ("    return a + b\nwith open('big.bin', 'wb') as f:\n"
               "    for _ in range(10 * 1024):\n        f.write(b'\\0' * (1 << 20))\n")
    result = run_contained(area, program)
    assert result.outcome == "file size limit"
    assert "File too large" in result.detail


def test_deleting_a_file_outside_its_directory_fails(area, isolation):
    if not isolation.namespaces:  # then only file permissions protect, and the victim is world-writable
        pytest.skip(f"no read-only mount without namespaces ({isolation.reason})")
    victim = area / "victim.txt"
    result = run_contained(area, f"    return a + b\nimport os\nos.remove({str(victim)!r})\n")
    # the world-writable file is protected by the read-only mount itself
    assert result.outcome == "failed: OSError" and "Read-only file system" in result.detail
    assert victim.read_text() == "precious\n"


def test_opening_a_socket_to_the_host_fails(area, isolation):
    if not isolation.namespaces:
        pytest.skip(f"no network namespace on this machine: {isolation.reason}")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        program = (f"    return a + b\nimport socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n")
        result = run_contained(area, program)
        server.settimeout(0.2)
        with pytest.raises(TimeoutError):
            server.accept()
    assert result.outcome == "failed: OSError"
    assert "unreachable" in result.detail.lower()


def test_the_parents_environment_is_not_visible(area, monkeypatch, isolation):
    needs_namespaces_or_another_user(isolation, "/proc/PID/environ of the evaluator")
    monkeypatch.setenv("CP_EVAL_SECRET", "s3cret-value")
    program = ("    return a + b\nimport os, glob\nassert 'CP_EVAL_SECRET' not in os.environ, 'env leaked'\n"
               "for path in glob.glob('/proc/*/environ'):\n"
               "    try:\n        data = open(path, 'rb').read()\n    except OSError:\n        continue\n"
               "    assert b's3cret-value' not in data, path\n")
    result = run_contained(area, program)
    assert result.outcome == "passed", (result.detail, result.output)


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)"])
def test_exiting_with_0_before_the_tests_is_not_a_pass(area, exit_call):
    result = run_contained(area, f"    return a - b\n{exit_call}\n")
    assert result.outcome == "exit: 0"


def test_forging_a_result_on_every_descriptor_is_not_a_pass(area):
    forged = '{"token": "0" * 32, "report": {"status": "returned"}, "ended": {"exit": 0}}'
    program = (f"    return a - b\nimport os\nfor fd in range(3, 64):\n    try:\n"
               f"        os.write(fd, ({forged!r} + '\\n').encode())\n    except OSError:\n        pass\nos._exit(0)\n")
    assert run_contained(area, program).outcome == "exit: 0"


def test_killing_its_parent_does_not_kill_the_evaluator(area):
    result = run_contained(area, "    return a - b\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n")
    assert result.outcome != "passed"
    # the evaluator (this process) is alive, and the next program runs normally
    assert run_contained(area, "    return a + b\n").outcome == "passed"


def test_printing_1gb_is_capped(area):
    import psutil

    rss_before = psutil.Process().memory_info().rss
    result = run_contained(area, "    return a + b\nchunk = 'x' * (1 << 20)\nfor _ in range(1024):\n    print(chunk)\n")
    assert result.outcome == "file size limit"
    assert len(result.output) <= OUTPUT_HEAD
    assert psutil.Process().memory_info().rss - rss_before < 64 << 20


def test_stdin_is_closed(area):
    assert run_contained(area, "    return a + b\nimport sys\nassert sys.stdin.read() == ''\n").outcome == "passed"


def test_run_many_keeps_input_order_and_is_parallel(area):
    sandbox = Sandbox(SandboxLimits(timeout_s=2.0), scratch_root=str(area / "scratch"))
    programs = [build_program(PROBLEM, "    return a + b\n" if i % 2 else "    return a * b\n") for i in range(8)]
    outcomes = [r.outcome for r in sandbox.run_many(programs, workers=4)]
    assert outcomes == ["failed: AssertionError", "passed"] * 4


def test_limits_are_validated():
    with pytest.raises(ValueError, match="memory_bytes >= 64 MiB"):
        SandboxLimits(memory_bytes=1 << 20)


@pytest.mark.parametrize("completion, outcome", [
    ("    return a + b\n", "passed"),
    ("    return a - b\n", "failed: AssertionError"),
    ("    return a + b\nimport os\nos._exit(0)\n", "exit: 0"),
    ("    return a + b\nimport os\nwhile True:\n    os.fork()\n", "failed: BlockingIOError"),
    ("    return a + b\nimport os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nwhile True:\n    pass\n",
     "crashed: SIGKILL"),
])
def test_without_namespaces_the_limits_and_protocol_still_hold(area, isolation, completion, outcome):
    """What runs where unshare is unavailable: same supervisor, same limits, no namespaces."""
    from evaluation.sandbox import Isolation

    weak = Isolation(False, isolation.python, isolation.user, "forced by the test")
    assert "WEAKER ISOLATION (forced by the test)" in weak.describe()
    before = snapshot(area)
    result = Sandbox(SandboxLimits(timeout_s=2.0, max_processes=8), weak,
                     scratch_root=str(area / "scratch")).run(build_program(PROBLEM, completion))
    assert result.outcome == outcome
    assert snapshot(area) == before and list((area / "scratch").iterdir()) == []
    assert processes_mentioning(str(area / "scratch")) == []
