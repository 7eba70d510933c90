"""Hostile inputs, round three (issue 21): each test names the defect it pins down and
failed on the code before its fix."""

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tiny import TINY_CLI as TINY  # noqa: E402
from tiny import finetune_cfg, one_line_error  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lvtime import checkpoints, folders, layout  # noqa: E402
from lvtime import sweep as sw  # noqa: E402
from lvtime.cli import app  # noqa: E402
from lvtime.config import SweepConfig, command_args  # noqa: E402
from lvtime.data import load_dataset  # noqa: E402
from lvtime.errors import DataError, LedgerError, RunFolderError  # noqa: E402
from lvtime.finetune_run import finetune  # noqa: E402
from lvtime.ledger import Ledger  # noqa: E402

runner = CliRunner()
cfg = finetune_cfg


def strict_json(text: str):
    """JSON as the standard has it: NaN and Infinity are refused."""
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))


def write_ledger(path: Path, entries: list[dict], **top) -> None:
    doc = {"schema": "lvtime-ledger/1", "budget": 1e17, "created_at": "x", "entries": entries, **top}
    path.write_text(json.dumps(doc))


def entry(i: str, status: str = "completed", **kw) -> dict:
    return {"id": i, "label": i, "status": status, "estimated_flops": 9e16, **kw}


# --- 1, 10, 11: the ledger ---------------------------------------------------------------


def test_1_a_closed_entry_without_its_spend_is_refused_not_counted_as_zero(tmp_path):
    path = tmp_path / "lvtime-ledger.json"
    for spent in ({}, {"spent_flops": None}):
        write_ledger(path, [entry("a", **spent)])
        before = path.read_bytes()
        with pytest.raises(LedgerError, match="records no spent_flops"):
            Ledger(path).reserve("next", 5e16)  # counted as 0 it would have let 172% through
        r = runner.invoke(app, ["ledger", "export", "--ledger", str(path)])
        assert "no spent_flops" in one_line_error(r, 1)  # export counted it as its estimate
        assert path.read_bytes() == before


def test_1_every_total_uses_one_rule(tmp_path):
    path = tmp_path / "lvtime-ledger.json"
    write_ledger(path, [entry("a", spent_flops=1e16), entry("b", status="running", pid=None)])
    data = Ledger(path).read()
    assert data.totals()["spent"] == 1e16 and data.totals()["reserved"] == 9e16
    from lvtime.ledger import report_rows

    total = next(r for r in report_rows(data) if r["experiment"] == "Total")
    assert total["flops"] == data.totals()["spent"] + data.totals()["reserved"]


def test_10_sums_stay_finite_and_json_stays_json(tmp_path):
    for _ in range(2):
        r = runner.invoke(app, ["ledger", "add", "--flops", "1e308", "--label", "huge"])
        assert "above 1e+30" in one_line_error(r, 2)
    r = runner.invoke(app, ["ledger", "--json"])
    assert r.exit_code == 0 and strict_json(r.stdout)["spent"] == 0
    path = Path(os.environ["LVTIME_LEDGER"])
    write_ledger(path, [entry("a", spent_flops=1e308)])  # by hand
    assert "invalid ledger" in one_line_error(runner.invoke(app, ["ledger", "--json"]), 1)


def test_11_duplicate_entry_ids_are_refused(tmp_path):
    path = tmp_path / "lvtime-ledger.json"
    write_ledger(path, [entry("a", spent_flops=1.0), entry("a", status="running", pid=None)])
    with pytest.raises(LedgerError, match="two entries have the id 'a'"):
        Ledger(path).read()


@pytest.mark.parametrize("missing", ["budget", "entries"])
def test_a_ledger_without_budget_or_entries_is_refused_not_filled_in(tmp_path, missing):
    path = tmp_path / "lvtime-ledger.json"
    doc = {"schema": "lvtime-ledger/1", "budget": 1e15, "entries": []}
    del doc[missing]
    path.write_text(json.dumps(doc))
    with pytest.raises(LedgerError, match=f"no '{missing}'"):
        Ledger(path).reserve("x", 1.0)
    assert json.loads(path.read_text()) == doc


# --- 2, 3: one process per folder ---------------------------------------------------------

HOLD = "import sys, time; from pathlib import Path; from lvtime import folders\n"
HOLD += "with folders.held(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(120)\n"


def hold_in_another_process(path: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.slow
def test_2_a_folder_another_process_writes_is_refused_naming_it(h5, tmp_path):
    run_dir, sweep_dir = tmp_path / "run", tmp_path / "sweep"
    holders = [hold_in_another_process(run_dir), hold_in_another_process(sweep_dir)]
    try:
        r = runner.invoke(app, ["finetune", str(h5), *TINY, "--steps", "1", "--out", str(run_dir)])
        assert f"in use by lvtime process {holders[0].pid}" in one_line_error(r, 1)
        r = runner.invoke(app, ["sweep", str(h5), *TINY, "--rank", "2,4", "--steps", "1", "--out", str(sweep_dir)])
        assert f"in use by lvtime process {holders[1].pid}" in one_line_error(r, 1)
        assert Ledger().read().entries == []  # nothing charged twice: nothing charged at all
    finally:
        for p in holders:
            p.kill()
            p.wait()
    # the kernel let go with the holder: the same command now runs
    r = runner.invoke(app, ["finetune", str(h5), *TINY, "--steps", "1", "--out", str(run_dir)])
    assert r.exit_code == 0, r.output


def test_a_run_refused_by_the_budget_leaves_no_folder_behind(h5, tmp_path):
    Ledger().init(1.0)
    with pytest.raises(Exception, match="FLOPs"):
        finetune(cfg(h5, tmp_path / "r"))
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_3_a_rerun_skips_runs_still_held_by_a_job(h5, tmp_path):
    spec = SweepConfig(out=str(tmp_path / "s"), base=cfg(h5, "x").model_dump(exclude={"out"}), grid={"rank": [2, 4]})
    sw.open_folder(spec)  # as the killed sweep left it
    holder = hold_in_another_process(tmp_path / "s" / "r2")
    try:
        planned, summary = sw.plan(spec, Ledger())
        assert [(p.state, p.planned) for p in planned] == [("busy", False), ("new", True)]
        assert summary["sweep_total"] == planned[1].cost
        r = runner.invoke(app, ["sweep", "--config", str(_save(spec, tmp_path)), "--print-commands"])
        assert r.exit_code == 0 and "r4" in r.stdout and "r2" not in r.stdout
    finally:
        holder.kill()
        holder.wait()


def _save(spec: SweepConfig, tmp_path: Path) -> Path:
    path = tmp_path / "sweep.json"
    path.write_text(spec.model_dump_json())
    return path


PARENT = """import subprocess, sys, time
from lvtime import jobs
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], **jobs.child_options())
print(child.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_3_jobs_end_when_the_sweep_is_killed_outright():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the job outlived its killed sweep")


# --- 4: a context no model or series has -----------------------------------------------


def test_4_context_is_checked_against_the_model_and_the_data_before_anything_is_allocated(h5, tmp_path):
    out = str(tmp_path / "r")
    r = runner.invoke(app, ["finetune", str(h5), "--model", "tiny-qwen2", "--context", "100000000", "--dry-run"])
    assert "tiny-qwen2 takes at most 4096 tokens" in one_line_error(r, 2)
    r = runner.invoke(
        app, ["finetune", str(h5), "--model", "tiny-qwen2", "--context", "4000", "--dry-run", "--out", out]
    )
    assert "the longest series is" in one_line_error(r, 2)


# --- 5, 6, 7: run files that are empty, mistyped or corrupt --------------------------------


def _two_checkpoints(h5, out):
    finetune(cfg(h5, out, steps=2, save_every=1))
    assert checkpoints.steps(out) == [1, 2]
    return checkpoints.folder(out, 2) / checkpoints.STATE_FILE


def test_5_an_empty_state_file_is_passed_over_by_name(h5, tmp_path):
    out = tmp_path / "r"
    _two_checkpoints(h5, out).write_bytes(b"")
    r = runner.invoke(app, ["finetune", "--resume", str(out), "--steps", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "passed over" in r.stderr and "step-2" in r.stderr and "corrupt or truncated" in r.stderr


@pytest.mark.parametrize(
    "edit, what",
    [
        (lambda s: s.update(step="2"), "step is str"),
        (lambda s: s.update(history=[1, 2]), "history is list"),
        (lambda s: s["rng"]["numpy"].update(keys=[1, 2]), "rng.numpy.keys is list"),
        (lambda s: s["history"].update(val=3), "history: val: Input should be a valid dictionary"),
        (lambda s: s["history"].update(flops=-1.0), "history: flops: Input should be greater than or equal to 0"),
    ],
)
def test_6_a_state_file_with_wrong_types_is_passed_over(h5, tmp_path, edit, what):
    out = tmp_path / "r"
    path = _two_checkpoints(h5, out)
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)
    r = runner.invoke(app, ["finetune", "--resume", str(out), "--steps", "3", "--quiet"])
    assert r.exit_code == 0, r.output
    assert what in r.stderr and "step-2" in r.stderr


def test_7_a_corrupt_summary_is_one_line_on_resume_and_left_out_of_a_sweep(h5, tmp_path):
    spec = SweepConfig(out=str(tmp_path / "s"), base=cfg(h5, "x").model_dump(exclude={"out"}), grid={"rank": [2, 4]})
    planned, _ = sw.plan(spec, Ledger())
    sw.run(spec, planned, Ledger())
    broken = tmp_path / "s" / "r2"
    (broken / layout.SUMMARY).write_text("{")
    r = runner.invoke(app, ["finetune", "--resume", str(broken), "--quiet"])
    assert "summary.json: corrupt" in one_line_error(r, 1)
    planned, _ = sw.plan(spec, Ledger())
    r = runner.invoke(app, ["sweep", "--config", str(_save(spec, tmp_path)), "--json", "--quiet"])
    assert r.exit_code == 0, r.output
    assert [row["run"] for row in json.loads(r.stdout)["results"]] == ["r4"]
    assert "left out of the results" in r.stderr


# --- 8, 9: what a sweep prints and plans ---------------------------------------------------


def test_8_a_data_path_that_looks_like_a_flag_stays_a_path(h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "-d.h5").write_bytes(h5.read_bytes())
    args = command_args(cfg("-d.h5", "x"), skip=("out",))
    assert args[0] == "./-d.h5"
    r = runner.invoke(app, ["finetune", *args, "--out", "runs/r", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["config"]["data"] == "./-d.h5"


def test_9_grid_values_equal_as_numbers_are_one_configuration():
    spec = SweepConfig(out="s", grid={"rank": [2, 2.0, "2"], "lr": [0.001, "1e-3", 1e-3]})
    assert spec.grid == {"rank": [2], "lr": [0.001]}
    assert [name for name, _, _ in sw.expand(spec)] == ["r2-lr0.001"]
    with pytest.raises(ValueError, match="rank: 0"):
        SweepConfig(grid={"rank": [0]})


# --- 12 and the minor ones -------------------------------------------------------------------


def test_12_a_complex_dataset_is_refused(tmp_path):
    path = tmp_path / "c.h5"
    with h5py.File(path, "w") as f:
        f["trajectories"] = np.ones((3, 5, 2), dtype=np.complex64)
        f["time"] = np.arange(5.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's ComplexWarning was all a user saw
        with pytest.raises(DataError, match="complex64 values, expected real numbers"):
            load_dataset(path)


def test_run_folder_json_never_holds_nan(tmp_path):
    layout.write_json(tmp_path / "m.json", {"r2": float("nan"), "x": [1.0, float("inf")], "a": np.float64("nan")})
    assert strict_json((tmp_path / "m.json").read_text()) == {"r2": None, "x": [1.0, None], "a": None}


def test_dry_run_refuses_the_out_the_run_would_refuse(small_h5):
    for command in (["finetune", "--model", "tiny-qwen2"], ["baseline", "--model", "tiny-qwen2"]):
        r = runner.invoke(app, [*command, str(small_h5), "--out", "/", "--dry-run"])
        assert "working directory or one of its parents" in one_line_error(r, 2)


def test_an_empty_out_is_named_empty_not_the_working_directory(small_h5):
    for command in (["finetune", "--model", "tiny-qwen2"], ["baseline", "--model", "tiny-qwen2"]):
        for dry in ([], ["--dry-run"]):
            r = runner.invoke(app, [*command, str(small_h5), "--out", "", *dry])
            assert "--out: empty path" in one_line_error(r, 2)


def test_the_folder_lock_is_not_content(tmp_path):
    with folders.held(tmp_path / "run"):
        assert folders.is_empty(tmp_path / "run") and folders.holder(tmp_path / "run") is not None
    assert not (tmp_path / "run").exists()  # made only to be locked, left empty: removed
    (tmp_path / "kept").mkdir()
    with folders.held(tmp_path / "kept"):
        with pytest.raises(RunFolderError, match=f"in use by lvtime process {os.getpid()}"):
            with folders.held(tmp_path / "kept"):
                pass
    assert folders.holder(tmp_path / "kept") is None and (tmp_path / "kept").exists()


@pytest.mark.parametrize("name", [layout.ADAPTER_ENCODING, "adapter_config.json"])
def test_an_adapter_file_that_never_ends_is_refused_not_read(tmp_path, name):
    from lvtime import lora
    from lvtime.errors import ModelError

    adapter = tmp_path / "final"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"r": 2, "target_modules": ["q_proj"]}')
    (adapter / name).unlink(missing_ok=True)
    os.symlink("/dev/zero", adapter / name)  # read whole, it would fill the memory
    read = layout.read_adapter_encoding if name == layout.ADAPTER_ENCODING else lora.read_adapter_config
    with pytest.raises((RunFolderError, ModelError), match="not a regular file"):
        read(adapter)
    os.symlink("/dev/zero", tmp_path / layout.METRICS_LOG)  # a run folder's log, the same
    with pytest.raises(RunFolderError, match="not a regular file"):
        layout.read_metrics(tmp_path)
    (adapter / name).unlink()
    os.mkfifo(adapter / name)  # read, it would wait forever for a writer
    with pytest.raises((RunFolderError, ModelError), match="not a regular file"):
        read(adapter)
