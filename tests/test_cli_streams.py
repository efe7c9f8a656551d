"""The command line's standard streams (charrnn/cli/streams.py): closed by the caller, or gone
while a trainer runs. Each case is a real `python -m charrnn` with real file descriptors."""
import contextlib
import os
import pty
import signal
import subprocess
import sys
import time

import pytest

CHARRNN = [sys.executable, "-m", "charrnn"]
SMALL = ["--hidden", "16", "--layers", "1", "--batch", "4", "--seq-len", "16", "--threads", "1"]


@pytest.fixture
def work(tmp_path):
    (tmp_path / "a.txt").write_text("the quick brown fox jumps over the lazy dog.\n" * 300, encoding="utf-8")
    return tmp_path


def env(work):
    return {**os.environ, "CHARRNN_CACHE_DIR": str(work / "cache"), "CHARRNN_CHECKPOINT_DIR": str(work / "ck")}


def wait_for_steps(log, n=3, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().count('"event": "step"') >= n:
            return
        time.sleep(0.05)
    raise AssertionError("the trainer logged no steps")


def latest_step(work, name):
    from charrnn.checkpoint import schema
    return schema.load(str(work / "ck" / name / "latest.ckpt")).step


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_after_the_reader_of_stderr_has_gone_still_saves(work, sig, code):
    """`( charrnn train a.txt 2>&1; echo rc=$? ) | head -2`: head leaves after two lines, and
    every later write to stderr meets EPIPE. The run goes on, and a signal saves it."""
    log = work / "log.jsonl"
    p = subprocess.Popen([*CHARRNN, "train", "a.txt", "--name", "gone", "--steps", "100000", "--log", str(log),
                          *SMALL], cwd=work, env=env(work), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(2):
            assert p.stderr.readline()
        p.stderr.close()  # the reader goes away
        wait_for_steps(log, 20)  # well after: the progress lines meet EPIPE, the run goes on
        p.send_signal(sig)
        assert p.wait(timeout=60) == code
    finally:
        if p.poll() is None:
            p.kill()
    assert latest_step(work, "gone") >= 20


@contextlib.contextmanager
def training_in_a_terminal(work, name, log, **environ):
    """`charrnn train` as the session of a pty, its controlling terminal: (pid, the master
    side); killed at the end if it still runs."""
    pid, master = pty.fork()
    if pid == 0:  # the child
        os.chdir(work)
        os.execve(sys.executable, [*CHARRNN, "train", "a.txt", "--name", name, "--steps", "100000", "--log",
                                   str(log), *SMALL], {**env(work), **environ})
    try:
        yield pid, master
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_closing_the_terminal_saves_and_exits_129(work):
    """A tmux session killed, an ssh connection lost: the terminal hangs up (SIGHUP to the
    foreground group, then EIO on every write). The step is finished and saved."""
    log = work / "log.jsonl"
    with training_in_a_terminal(work, "tty", log) as (pid, master):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (log.exists() and log.read_text().count('"event": "step"') >= 5):
            try:
                os.read(master, 65536)  # the live view draws on the terminal
            except OSError:
                break
        os.close(master)  # the terminal goes away
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 129
    assert latest_step(work, "tty") >= 5


def test_training_with_stderr_closed_trains_in_silence(work):
    r = subprocess.run(["/bin/sh", "-c", f"exec {sys.executable} -m charrnn train a.txt --steps 3 --name shut "
                        f"{' '.join(SMALL)} 2>&-"], cwd=work, env=env(work), capture_output=True)
    assert (r.returncode, r.stdout) == (0, b"")
    assert latest_step(work, "shut") == 3


@pytest.mark.parametrize("args", [["score"], ["eval", "-"], ["train", "-", "--steps", "1"],
                                  ["sample", "--prime-file", "-"]], ids=["score", "eval", "train", "sample-prime"])
def test_a_closed_standard_input_is_one_line_and_exit_2(work, args):
    subprocess.run([*CHARRNN, "train", "a.txt", "--steps", "2", "--name", "m", *SMALL], cwd=work, env=env(work),
                   check=True, capture_output=True)
    r = subprocess.run(["/bin/sh", "-c", 'exec "$@" <&-', "sh", *CHARRNN, *args], cwd=work, env=env(work),
                       capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (
        2, "", "charrnn: error: standard input is closed: give a file, or pipe the text in\n")


@pytest.mark.parametrize("args", [["sample", "--length", "5"], ["eval", "a.txt"], ["info", "--json"]],
                         ids=["sample", "eval", "info"])
def test_a_closed_standard_output_is_one_line_and_exit_2(work, args):
    subprocess.run([*CHARRNN, "train", "a.txt", "--steps", "2", "--name", "m", *SMALL], cwd=work, env=env(work),
                   check=True, capture_output=True)
    r = subprocess.run(["/bin/sh", "-c", 'exec "$@" >&-', "sh", *CHARRNN, *args], cwd=work, env=env(work),
                       capture_output=True, text=True)
    assert (r.returncode, r.stderr) == (2, "charrnn: error: standard output is closed: there is nowhere to write "
                                           "the results; redirect it to a file or a pipe\n")


def test_ctrl_c_in_a_terminal_is_not_echoed_over_the_live_view(work):
    """The terminal echoes Ctrl-C as "^C" where the cursor stands, under the live panel, which
    then left a copy of its top border at each press; the view turns that echo off (ECHOCTL)
    while it draws, and gives the terminal back as it was."""
    import termios
    log = work / "log.jsonl"
    out = b""
    with training_in_a_terminal(work, "cc", log, TERM="xterm") as (pid, master):
        while not (log.exists() and log.read_text().count('"event": "step"') >= 5):
            out += os.read(master, 65536)
        os.write(master, b"\x03")  # Ctrl-C, typed
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child has exited and closed the terminal
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 130
    assert b"SIGINT: finishing this step and saving" in out and b"^C" not in out
    assert latest_step(work, "cc") >= 5
    os.close(master)
