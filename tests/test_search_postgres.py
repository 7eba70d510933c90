"""A search on a real PostgreSQL server (started by the test from the ``pgserver`` package,
on a unix socket): workers in separate processes and working directories sharing one
ledger file, as machines sharing a file system would; one killed mid-trial; the server
stopped mid-search and started again."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pgserver = pytest.importorskip("pgserver", reason="the test extra's pgserver starts the PostgreSQL server")
pytest.importorskip("psycopg2", reason="the test extra's psycopg2-binary is the driver")
optuna = pytest.importorskip("optuna")

from lvtime.ledger import Ledger  # noqa: E402

pytestmark = pytest.mark.slow
TINY = ["--model", "tiny-qwen2", "--context", "32", "--batch-size", "2", "--val-series", "2", "--quiet"]


@pytest.fixture
def server(tmp_path):
    data = tmp_path / "pgdata"
    srv = pgserver.get_server(str(data), cleanup_mode="stop")
    yield srv, data
    srv.cleanup()


def url_of(srv) -> str:
    return srv.get_uri().replace("postgresql://", "postgresql+psycopg2://", 1)


@pytest.fixture
def shared(tmp_path, h5):
    """A shared folder (the data, the ledger, the sweep) and two workers' own folders."""
    root = tmp_path / "shared"
    root.mkdir()
    (root / "lv.h5").write_bytes(h5.read_bytes())
    for w in ("w1", "w2"):
        (tmp_path / w).mkdir()
    return root


def search_argv(root: Path, url: str, trials: int, steps: int) -> list[str]:
    return [sys.executable, "-m", "lvtime", "sweep", str(root / "lv.h5"), *TINY, "--steps", str(steps),
            "--history", "5", "--forecast-every", str(max(1, steps // 4)), "--forecast-series", "2",
            "--lr", "1e-4,3e-4,1e-3,3e-3,1e-2,3e-2", "--search", "random", "--trials", str(trials),
            "--storage", url, "--out", str(root / "s"), "--ledger", str(root / "ledger.json")]  # fmt: skip


def start(argv: list[str], cwd: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "LVTIME_LEDGER"}
    return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = p.communicate(timeout=timeout)
    return p.returncode, err


def trials(url: str, root: Path) -> list:
    name = f"lvtime:{(root / 's').resolve()}"
    return optuna.load_study(study_name=name, storage=url).get_trials(deepcopy=False)


def entries(root: Path) -> list:
    return [e for e in Ledger(root / "ledger.json").read().entries if "trial" in e.label]


def wait_for_step(run: Path, timeout: float = 120) -> None:
    """Until the trial in ``run`` has logged a training step (it is mid-trial)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        log = run / "metrics.jsonl"
        if log.is_file() and any('"loss"' in line for line in log.read_text().splitlines()):
            return
        time.sleep(0.1)
    pytest.fail(f"{run} never started training")


def test_two_workers_in_their_own_folders_share_the_search_and_the_ledger(server, shared, tmp_path):
    srv, _ = server
    url = url_of(srv)
    argv = search_argv(shared, url, trials=4, steps=2)
    workers = [start(argv, tmp_path / w) for w in ("w1", "w2")]
    for w in workers:
        code, err = finish(w)
        assert code == 0, err
    done = [t for t in trials(url, shared) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4 and len({t.number for t in done}) == len(done)
    mine = entries(shared)
    assert all(e.status == "completed" for e in mine)
    assert len(mine) == len({e.id for e in mine}) == len(done)  # each trial run and charged once
    assert not list((tmp_path / "w1").iterdir()) and not list((tmp_path / "w2").iterdir())  # nothing in the cwd


def test_a_worker_killed_mid_trial_is_settled_once_and_the_search_goes_on(server, shared, tmp_path):
    srv, _ = server
    url = url_of(srv)
    argv = search_argv(shared, url, trials=2, steps=100)  # a re-run is the same command
    victim = start(argv, tmp_path / "w1")
    wait_for_step(shared / "s" / "trial-0")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    again = start(argv, tmp_path / "w2")
    code, err = finish(again)
    assert code == 0, err
    states = {t.number: t.state for t in trials(url, shared)}
    assert states[0] == optuna.trial.TrialState.FAIL  # the dead worker's trial, replaced
    assert sum(s == optuna.trial.TrialState.COMPLETE for s in states.values()) == 2
    mine = entries(shared)
    assert not [e for e in mine if e.status == "running"]
    killed = [e for e in mine if e.label.endswith("trial 0")]
    assert len(killed) == 1 and killed[0].status == "settled"  # charged its reservation, once


def test_the_server_stopped_mid_search_fails_in_one_line_and_a_rerun_resumes(server, shared, tmp_path):
    srv, data = server
    url = url_of(srv)
    argv = search_argv(shared, url, trials=2, steps=100)
    worker = start(argv, tmp_path / "w1")
    wait_for_step(shared / "s" / "trial-0")
    srv.cleanup()  # the server stops: the next report to the study fails
    code, err = finish(worker)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("lvtime: error: the search's storage"), err
    stopped = entries(shared)
    assert [e.status for e in stopped] == ["failed"]  # settled at what it spent, not left running
    restarted = pgserver.get_server(str(data), cleanup_mode="stop")  # started again; stopped below
    try:
        code, err = finish(start(argv, tmp_path / "w2"))
        assert code == 0, err
        assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials(url, shared)) == 2
        after = entries(shared)
        assert after[0].model_dump() == stopped[0].model_dump()  # the failed trial's entry is not charged again
        assert [e.status for e in after[1:]] == ["completed", "completed"]
        assert json.loads((shared / "s" / "sweep.json").read_text())["storage"] == url
    finally:
        restarted.cleanup()  # the fixture's cleanup is of the first server, already stopped: no process left behind
