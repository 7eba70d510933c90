"""Ctrl-C / SIGTERM: lvtime's exception survives CPython's exit rules, and the ledger's
hold defers a signal whichever thread the kernel hands it to."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from lvtime import signals


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``code`` as ``python -m``, the way the CLI tests (and users) run lvtime: only
    that mode turns a KeyboardInterrupt remembered by CPython into an exit by SIGINT."""
    (tmp_path / "sigcase.py").write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    cmd = [sys.executable, "-m", "sigcase"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path)


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_stop_caught_after_an_exec_still_exits_with_the_code_asked_for(sig, tmp_path):
    # A plain KeyboardInterrupt raised inside exec() of a string makes CPython exit by
    # SIGINT (-2) even when caught; transformers builds classes that way while loading.
    r = _run(
        f"""
        import os, signal, sys
        from lvtime import signals
        signals.install()
        try:
            exec("import os, signal\\nos.kill(os.getpid(), signal.{sig})\\nx = sum(range(10))")
        except KeyboardInterrupt:
            sys.exit(130)
        """,
        tmp_path,
    )
    assert r.returncode == 130, r.stderr


def test_a_stop_swallowed_in_a_finalizer_is_raised_by_check(tmp_path):
    # Python ignores an exception raised in __del__ (or a weakref callback), where a
    # signal handler can run; the stop must not be lost, nor printed as a traceback.
    r = _run(
        """
        import os, signal, sys
        from lvtime import signals
        signals.install()

        class Finalized:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGTERM)
                sum(range(10))  # a call: Python runs the pending handler here

        Finalized()
        print("went on")
        try:
            signals.check()
        except KeyboardInterrupt:
            sys.exit(130)
        """,
        tmp_path,
    )
    assert r.returncode == 130 and r.stdout == "went on\n", r.stderr
    assert r.stderr == ""


def test_install_keeps_an_ignored_ctrl_c_ignored(tmp_path):
    r = _run(
        """
        import os, signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        from lvtime import signals
        signals.install()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)
        print("alive", signal.getsignal(signal.SIGINT) is signal.SIG_IGN)
        """,
        tmp_path,
    )
    assert r.returncode == 0 and r.stdout.split() == ["alive", "True"], r.stderr


@pytest.fixture
def recorded():
    """SIGTERM handled by a recorder for the test; the old handler back afterwards."""
    got = []
    old = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    yield got
    signal.signal(signal.SIGTERM, old)


def _spin():
    return sum(i * i for i in range(20_000))  # bytecode, where Python runs pending handlers


def test_held_signals_arrive_when_the_block_ends(recorded):
    with signals.held():
        os.kill(os.getpid(), signal.SIGTERM)
        _spin()
        assert recorded == []
    assert recorded == [signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) is not None and recorded == [signal.SIGTERM]


def test_a_signal_delivered_to_another_thread_is_held_too(recorded):
    # A mask set in the main thread would not stop this: the other thread takes the
    # signal and CPython runs the handler in the main thread regardless.
    go = threading.Event()
    worker = threading.Thread(target=lambda: (go.wait(10), signal.raise_signal(signal.SIGTERM)))
    worker.start()
    with signals.held():
        go.set()
        worker.join(10)
        _spin()
        assert recorded == []
    assert recorded == [signal.SIGTERM]


def test_release_lets_signals_through_until_held_again(recorded):
    with signals.held() as hold:
        hold.release()
        os.kill(os.getpid(), signal.SIGTERM)
        _spin()
        assert recorded == [signal.SIGTERM]
        hold.hold()
        hold.hold()  # twice: still restores the recorder, not the hold's own handler
        os.kill(os.getpid(), signal.SIGTERM)
        _spin()
        assert recorded == [signal.SIGTERM]
    assert recorded == [signal.SIGTERM, signal.SIGTERM]


def test_stop_flag_first_signal_sets_the_flag_second_raises():
    with signals.StopFlag() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        _spin()
        assert stop.raised
        with pytest.raises(signals.Stop):
            os.kill(os.getpid(), signal.SIGTERM)
            _spin()


def test_the_first_stop_says_at_once_what_happens_next(capfd):
    # an evaluation can take minutes before the run reaches the end of its step: say so now
    with signals.StopFlag():
        os.kill(os.getpid(), signal.SIGINT)
        _spin()
        said = capfd.readouterr().err
        assert said.count("\n") == 1 and "stopping at the end of this step" in said and "again" in said
        with pytest.raises(signals.Stop):
            os.kill(os.getpid(), signal.SIGINT)
            _spin()
    assert capfd.readouterr().err == ""  # the second stop is the exception, not another line
