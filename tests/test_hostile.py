"""Hostile and careless inputs (issue 10): nothing outside a run folder is deleted, no
untrusted code runs, the budget cannot be switched off, no reservation leaks, and every
refusal is one line with the documented exit code."""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from tiny import TINY_CLI as TINY  # noqa: E402
from tiny import finetune_cfg, one_line_error  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from lvtime import checkpoints, data, folders, layout, simulation  # noqa: E402
from lvtime import sweep as sw  # noqa: E402
from lvtime.cli import app  # noqa: E402
from lvtime.errors import Interrupted, LedgerError, ModelError, TrainingError, UsageError  # noqa: E402
from lvtime.finetune_run import finetune  # noqa: E402
from lvtime.ledger import Ledger  # noqa: E402

runner = CliRunner()
cfg = finetune_cfg


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --- 1. no code runs on resume ---------------------------------------------------------


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def _plant(path: Path, target: Path) -> None:
    evil = _Evil()
    evil.target = target
    path.write_bytes(pickle.dumps({"step": 2, "optimizer": evil, "scheduler": {}, "rng": {}, "history": {}}))


def test_resume_never_unpickles_code_and_falls_back_to_a_good_checkpoint(h5, tmp_path):
    out = tmp_path / "run"
    finetune(cfg(h5, out, steps=2, save_every=1))
    pwned = tmp_path / "pwned"
    _plant(out / "checkpoints" / "step-2" / "state.pt", pwned)
    r = runner.invoke(app, ["finetune", "--resume", str(out), "--steps", "3", "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    assert not pwned.exists()
    assert "passed over a checkpoint" in r.stderr and "step-2" in r.stderr
    assert json.loads(r.stdout)["steps"] == 3
    # every checkpoint poisoned: refused in one line, nothing run
    for step in checkpoints.steps(out):
        _plant(checkpoints.folder(out, step) / "state.pt", pwned)
    r = runner.invoke(app, ["finetune", "--resume", str(out), "--steps", "9", "--quiet"])
    assert "no checkpoint loads" in one_line_error(r, 1)
    assert not pwned.exists()


def test_truncated_state_or_adapter_is_passed_over(h5, tmp_path):
    out = tmp_path / "run"
    finetune(cfg(h5, out, steps=2, save_every=1))
    state = out / "checkpoints" / "step-2" / "state.pt"
    state.write_bytes(state.read_bytes()[:100])
    found = checkpoints.newest_good(out)
    assert found.step == 1 and "corrupt" in found.skipped[0]
    adapter = out / "checkpoints" / "step-1" / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:50])
    found = checkpoints.newest_good(out)
    assert found.step is None and len(found.skipped) == 2


def test_checkpoint_files_hold_only_plain_values(h5, tmp_path):
    out = tmp_path / "run"
    finetune(cfg(h5, out, steps=1))
    state = checkpoints.read_state(checkpoints.folder(out, 1))  # weights_only=True
    assert state["step"] == 1


# --- 2. nothing outside the run folder is deleted --------------------------------------


def test_sweep_values_cannot_escape_the_sweep_folder(h5, tmp_path):
    spec = sw.SweepConfig(
        out=str(tmp_path / "runs" / "s"), base={"data": str(h5)}, grid={"model": ["/../../../victim"]}
    )
    ((name, _, config),) = sw.expand(spec)
    assert "/" not in name and not name.startswith((".", "-"))
    assert Path(config.out).resolve().parent == (tmp_path / "runs" / "s").resolve()
    long = sw.expand(sw.SweepConfig(out="s", grid={"model": ["m" * 500]}))[0][0]
    assert len(long) <= folders.MAX_NAME


def test_out_empty_dot_or_parent_never_deletes_the_working_directory(h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LVTIME_LEDGER", str(tmp_path / "lvtime-ledger.json"))
    Ledger().init(1e17)
    (tmp_path / "precious.txt").write_text("mine")
    before = snapshot(tmp_path)
    for out in ["", ".", "..", str(tmp_path), "./"]:
        r = runner.invoke(app, ["finetune", str(h5), "--out", out, "--force", "--steps", "1", *TINY])
        one_line_error(r, 2)
    assert snapshot(tmp_path) == before
    assert not Ledger().read().entries


def test_force_refuses_symlinks_files_and_foreign_folders(h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    real = tmp_path / "real_run"
    finetune(cfg(h5, real, steps=1))
    link = tmp_path / "link"
    link.symlink_to(real)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("keep")
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_text("meow")
    n_entries = len(Ledger().read().entries)
    before = snapshot(tmp_path)
    for out, what in [
        (link, "symlink"),
        (a_file, "not a folder"),
        (a_file / "sub", "is a file"),
        (foreign, "not made by lvtime"),
    ]:
        r = runner.invoke(app, ["finetune", str(h5), "--out", str(out), "--force", "--steps", "1", *TINY])
        assert what in one_line_error(r, 2)
    assert snapshot(tmp_path) == before
    assert len(Ledger().read().entries) == n_entries  # nothing reserved
    finetune(cfg(h5, real, steps=1), force=True)  # lvtime's own folder: replaced


def test_force_never_replaces_another_kind_of_run_or_a_folder_holding_an_input(small_h5, tmp_path, monkeypatch):
    import shutil

    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "runs" / "r"
    finetune(cfg(small_h5, run_dir, steps=1))
    fc = ["--history", "20", "--horizon", "5", "--limit", "2", "--quiet"]
    before = snapshot(run_dir)
    r = runner.invoke(
        app, ["forecast", str(small_h5), "--adapter", str(run_dir / "final"), "--out", str(run_dir), *fc, "--force"]
    )
    assert "is an lvtime finetune folder" in one_line_error(r, 2)
    assert snapshot(run_dir) == before  # the adapter it was about to read is still there
    out = tmp_path / "runs" / "f"
    assert (
        runner.invoke(app, ["baseline", str(small_h5), "--model", "tiny-qwen2", "--out", str(out), *fc]).exit_code == 0
    )
    r = runner.invoke(app, ["finetune", str(small_h5), "--out", str(out), "--force", "--steps", "1", *TINY])
    assert "is an lvtime baseline folder" in one_line_error(r, 2)
    data_inside = out / "lv.h5"
    shutil.copy(small_h5, data_inside)
    r = runner.invoke(app, ["baseline", str(data_inside), "--model", "tiny-qwen2", "--out", str(out), *fc, "--force"])
    assert "which this command reads" in one_line_error(r, 2) and data_inside.exists()
    data_inside.unlink()
    r = runner.invoke(
        app, ["forecast", str(small_h5), "--adapter", str(run_dir / "final"), "--out", str(out), *fc, "--force"]
    )
    assert r.exit_code == 0, r.output  # a forecast replaces a baseline folder: same files


def test_a_sweep_never_writes_into_someone_elses_folder(h5, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "results.csv").write_text("mine")
    before = snapshot(tmp_path)
    args = ["sweep", str(h5), "--model", "tiny-qwen2", "--rank", "2", "--steps", "1", "--out"]
    r = runner.invoke(app, [*args, str(foreign)])
    assert "is not an lvtime sweep folder" in one_line_error(r, 2)
    assert snapshot(tmp_path) == before and not (foreign / folders.MARKER).exists()
    forecast_dir = tmp_path / "forecast"  # lvtime's, but not a sweep's: its files stay its own
    folders.create(forecast_dir, "forecast")
    (forecast_dir / "results.csv").write_text("forecast scores")
    r = runner.invoke(app, [*args, str(forecast_dir)])
    assert "is not an lvtime sweep folder" in one_line_error(r, 2)
    assert (forecast_dir / "results.csv").read_text() == "forecast scores"
    assert not Path("lvtime-ledger.json").exists() or not Ledger().read().entries  # nothing reserved


def test_a_folder_left_with_only_the_marker_takes_the_same_command_again(tmp_path, small_h5):
    # A forecast stopped before it wrote anything leaves its folder holding only the marker.
    out = tmp_path / "fc"
    folders.create(out, "baseline")
    assert folders.is_empty(out)
    lg = tmp_path / "l.json"
    args = ["baseline", str(small_h5), "--model", "tiny-qwen2", "--limit", "1", "--history", "10", "--horizon", "2"]
    r = runner.invoke(app, [*args, "--references", "last_value", "--ledger", str(lg), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    assert (out / "metrics.json").exists() and not folders.is_empty(out)
    run = tmp_path / "run"  # re-marked for what it now holds: a later --force sees a finetune
    folders.create(run, "forecast")
    folders.create(run, "finetune")
    assert folders.kind_of(run) == "finetune"


def test_lvtime_never_marks_a_folder_it_did_not_make(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "cat.jpg").write_text("meow")
    folders.create(foreign, "sweep")
    assert folders.kind_of(foreign) is None
    with pytest.raises(UsageError, match="not made by lvtime"):
        folders.replace(foreign, "forecast")
    assert (foreign / "cat.jpg").read_text() == "meow"
    old_sweep = tmp_path / "old-sweep"  # a sweep folder from before the marker
    old_sweep.mkdir()
    (old_sweep / "sweep.json").write_text(json.dumps({"out": str(old_sweep), "base": {}, "grid": {"rank": [2]}}))
    assert folders.kind_of(old_sweep) == "sweep"


def test_out_holding_the_ledger_is_refused(h5, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LVTIME_LEDGER", str(tmp_path / "shared" / "lvtime-ledger.json"))
    r = runner.invoke(app, ["finetune", str(h5), "--out", str(tmp_path / "shared"), "--steps", "1", *TINY])
    assert "holds the ledger" in one_line_error(r, 2)


# --- 3. the budget cannot be switched off ----------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "-inf"])
def test_ledger_add_refuses_non_finite_or_negative(value):
    r = runner.invoke(app, ["ledger", "add", "--flops", value, "--label", "x"])
    one_line_error(r, 2)
    assert not Ledger().exists()


@pytest.mark.parametrize("value", ["nan", "inf", "0", "-5"])
def test_ledger_init_refuses_a_budget_that_is_not_positive_and_finite(value):
    r = runner.invoke(app, ["ledger", "init", "--budget", value])
    one_line_error(r, 2)


@pytest.mark.parametrize(
    "field, value",
    [("budget", "NaN"), ("budget", "0"), ("budget", "Infinity"), ("spent_flops", "NaN"), ("spent_flops", "-1e17")],
)
def test_hand_edited_non_finite_ledger_is_refused_and_left_untouched(tmp_path, field, value):
    lg = Ledger(tmp_path / "l.json")
    e = lg.reserve("a", 10.0)
    lg.finish(e.id, 5.0)
    doc = json.loads(lg.path.read_text())
    if field == "budget":
        doc["budget"] = 1
    else:
        doc["entries"][0][field] = 1
    text = json.dumps(doc).replace(f'"{field}": 1', f'"{field}": {value}')
    lg.path.write_text(text)
    with pytest.raises(LedgerError, match="invalid ledger"):
        lg.reserve("b", 1.0)
    assert lg.path.read_text() == text


def test_library_refuses_non_finite_spend(tmp_path):
    lg = Ledger(tmp_path / "l.json")
    e = lg.reserve("a", 1.0)
    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(UsageError):
            lg.finish(e.id, bad)
        with pytest.raises(UsageError):
            lg.reserve("b", bad)


# --- 4. a symlinked ledger is one shared budget -----------------------------------------


def test_symlinked_ledger_is_shared_and_stays_a_link(tmp_path):
    shared = tmp_path / "shared.json"
    Ledger(shared).init(1e17)
    shared.chmod(0o640)
    links = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        link = tmp_path / name / "lvtime-ledger.json"
        link.symlink_to(shared)
        links.append(link)
        Ledger(link).add(1.0, f"from {name}")
    assert all(link.is_symlink() for link in links)
    assert [e.label for e in Ledger(shared).read().entries] == ["from a", "from b"]
    assert oct(shared.stat().st_mode & 0o777) == "0o640"
    assert Ledger(links[0]).lock_path == Ledger(shared).lock_path


def test_read_only_and_non_utf8_ledgers_are_one_line_errors(tmp_path):
    ro = tmp_path / "ro.json"
    Ledger(ro).init(1e17)
    ro.chmod(0o444)
    r = runner.invoke(app, ["ledger", "add", "--flops", "1", "--label", "x", "--ledger", str(ro)])
    assert "read-only" in one_line_error(r, 1)
    binary = tmp_path / "bin.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    r = runner.invoke(app, ["ledger", "--ledger", str(binary)])
    assert "UTF-8" in one_line_error(r, 1)
    assert binary.read_bytes() == b"\xff\xfe\x00garbage"


# --- 5. reservations settle on every exit path ------------------------------------------


def test_reservation_settles_interrupted_and_failed(tmp_path):
    lg = Ledger(tmp_path / "l.json")
    with pytest.raises(KeyboardInterrupt), lg.reservation("ctrl-c", 10.0) as r:
        r.spent = 3.0
        raise KeyboardInterrupt
    with pytest.raises(RuntimeError), lg.reservation("crash", 10.0) as r:
        r.spent = 4.0
        raise RuntimeError("disk full")
    with lg.reservation("fine", 10.0) as r:
        r.spent = 9.0
    got = [(e.label, e.status, e.spent_flops) for e in lg.read().entries]
    assert got == [("ctrl-c", "interrupted", 3.0), ("crash", "failed", 4.0), ("fine", "completed", 9.0)]
    assert lg.read().totals()["reserved"] == 0


@pytest.mark.slow
def test_sigterm_during_a_baseline_settles_and_exits_130(tmp_path):
    h5 = tmp_path / "long.h5"
    data.save_dataset(h5, simulation.simulate(n=20, points=100, seed=0))
    ledger = tmp_path / "l.json"
    cmd = [sys.executable, "-m", "lvtime", "baseline", str(h5), "--model", "tiny-qwen2", "--split", "train"]
    cmd += ["--batch-size", "1", "--int-digits", "4", "--ledger", str(ledger), "--quiet"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not (ledger.exists() and Ledger(ledger).read().entries):
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    (entry,) = Ledger(ledger).read().entries
    assert entry.status == "interrupted" and entry.spent_flops >= 0  # > 0 once generation began
    assert Ledger(ledger).read().totals()["reserved"] == 0


def test_failure_while_writing_results_settles_the_entry(tmp_path, small_h5, monkeypatch):
    from lvtime import forecast_run

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device", str(tmp_path / "out" / "metrics.json"))

    monkeypatch.setattr(forecast_run, "write_results", disk_full)
    r = runner.invoke(
        app,
        [
            "baseline",
            str(small_h5),
            "--model",
            "tiny-qwen2",
            "--history",
            "10",
            "--horizon",
            "3",
            "--limit",
            "2",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ],
    )
    assert "No space left" in one_line_error(r, 1)
    (entry,) = Ledger().read().entries
    assert entry.status == "failed" and entry.spent_flops > 0


def test_unwritable_out_is_refused_before_any_flop(tmp_path, small_h5):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = runner.invoke(app, ["baseline", str(small_h5), "--model", "tiny-qwen2", "--out", str(blocker / "out")])
    one_line_error(r, 2)
    assert not Ledger().exists() or not Ledger().read().entries


def test_ledger_settle_closes_a_stale_entry_only(tmp_path):
    path = tmp_path / "l.json"
    code = f"import os; from lvtime.ledger import Ledger; Ledger({str(path)!r}).reserve('doomed', 1e15); os._exit(9)"
    subprocess.run([sys.executable, "-c", code], check=False)
    (stale,) = Ledger(path).read().entries
    live = Ledger(path).reserve("alive", 5.0)  # this process: still running
    r = runner.invoke(app, ["ledger", "settle", live.id, "--ledger", str(path)])
    assert "still running" in one_line_error(r, 2)
    r = runner.invoke(app, ["ledger", "settle", stale.id, "--spent", "2e14", "--ledger", str(path), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["status"] == "settled"
    totals = Ledger(path).read().totals()
    assert totals["spent"] == 2e14 and totals["reserved"] == 5.0
    r = runner.invoke(app, ["ledger", "settle", stale.id, "--ledger", str(path)])
    assert "not running" in one_line_error(r, 2)


# --- 6. lost results ---------------------------------------------------------------------


def test_values_that_print_alike_get_their_own_folders_and_exact_commands(h5, tmp_path):
    spec = sw.SweepConfig(out=str(tmp_path / "s"), base={"data": str(h5)}, grid={"lr": [1e-2, 1.0000001e-2]})
    (a, _, ca), (b, _, cb) = sw.expand(spec)
    assert a != b
    assert "--lr 0.010000001" in sw.finetune_command(cb)


def test_sweep_file_with_unknown_keys_is_refused(tmp_path, h5):
    for doc in (
        {"out": "s", "modle": "x", "grid": {"rank": [2]}},
        {"out": "s", "base": {"modle": "x"}, "grid": {"rank": [2]}},
    ):
        path = tmp_path / "sweep.json"
        path.write_text(json.dumps(doc))
        r = runner.invoke(app, ["sweep", str(h5), "--config", str(path), "--dry-run"])
        assert "modle" in one_line_error(r, 2)


def test_fit_budget_with_nothing_that_fits_exits_3(h5, tmp_path):
    Ledger().init(10.0)
    r = runner.invoke(
        app,
        [
            "sweep",
            str(h5),
            "--rank",
            "2",
            "--steps",
            "1",
            "--fit-budget",
            "--model",
            "tiny-qwen2",
            "--set",
            "context=32",
            "--out",
            str(tmp_path / "s"),
            "--quiet",
        ],
    )
    assert "nothing was run" in one_line_error(r, 3)


# --- 7. non-finite training --------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--lr", "--weight-decay", "--clip-grad", "--lora-alpha"])
def test_non_finite_hyperparameters_are_refused(h5, tmp_path, flag):
    r = runner.invoke(app, ["finetune", str(h5), flag, "inf", "--out", str(tmp_path / "x"), *TINY])
    one_line_error(r, 2)
    assert not (tmp_path / "x").exists()


def test_a_checkpoint_with_non_finite_weights_is_never_called_good(h5, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = torch.optim.AdamW.step

    def explode(self, *a, **k):  # the second update makes the weights infinite
        real(self, *a, **k)
        explode.calls += 1
        if explode.calls == 2:
            with torch.no_grad():
                for group in self.param_groups:
                    for p in group["params"]:
                        p.fill_(float("inf"))

    explode.calls = 0
    monkeypatch.setattr(torch.optim.AdamW, "step", explode)
    with pytest.raises(TrainingError, match=r"step-1"):
        finetune(cfg(h5, out, steps=4, save_every=1, keep_checkpoints=5))
    assert checkpoints.steps(out) == [1]
    assert checkpoints.newest_good(out).step == 1


# --- one line, right exit code ------------------------------------------------------------


def test_corrupt_run_config_on_resume(h5, tmp_path):
    out = tmp_path / "run"
    finetune(cfg(h5, out, steps=1))
    (out / "config.json").write_bytes(b"\xff{not json")
    r = runner.invoke(app, ["finetune", "--resume", str(out)])
    assert "corrupt" in one_line_error(r, 2)


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"r": None}, "'r'"),
        ({"r": 0}, "'r'"),
        ({"target_modules": None}, "target_modules"),
        ({"alpha_pattern": {"q_proj": 64}}, "per-module"),
    ],
)
def test_bad_adapter_configs_are_refused(h5, tmp_path, edit, message):
    out = tmp_path / "run"
    finetune(cfg(h5, out, steps=1))
    path = out / "final" / "adapter_config.json"
    doc = {**json.loads(path.read_text()), **edit}
    path.write_text(json.dumps({k: v for k, v in doc.items() if v is not None}))
    r = runner.invoke(app, ["forecast", str(h5), "--adapter", str(out / "final"), "--history", "5", "--horizon", "2"])
    assert message in one_line_error(r, 1)


def test_truncated_adapter_weights_are_one_line(h5, tmp_path):
    out = tmp_path / "run"
    finetune(cfg(h5, out, steps=1))
    weights = out / "final" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:40])
    r = runner.invoke(app, ["forecast", str(h5), "--adapter", str(out / "final"), "--history", "5", "--horizon", "2"])
    assert "corrupt" in one_line_error(r, 1)
    assert Ledger().read().entries[-1].kind == "finetune"  # refused before a forecast entry


@pytest.mark.parametrize(
    "args",
    [
        ["encode", "--prey", "1,2", "--predator", "1,2", "--steps", "0"],
        ["encode", "--prey", "1,2", "--predator", "1,2", "--steps", "-1"],
        ["encode", "--prey", "1,2", "--predator", "1,2", "--alpha", "nan"],
        ["decode", "1.00,2.00", "--alpha", "inf"],
        ["baseline", "--temperature", "inf", "--dry-run"],
        ["simulate", "x.h5", "--t-max", "nan"],
        ["simulate", "x.h5", "--t-max", "inf"],
        ["simulate", "x.h5", "--t-max", "1e9"],
        ["finetune", "--rank", "0"],
        ["flops", "--seq", "0"],
    ],
)
def test_bad_values_are_one_line_usage_errors(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    one_line_error(runner.invoke(app, args), 2)
    assert not (tmp_path / "x.h5").exists()


def test_simulate_force_onto_a_folder_leaves_nothing_behind(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    r = runner.invoke(app, ["simulate", str(folder), "--force", "--n", "2"])
    assert "is a folder" in one_line_error(r, 2)
    assert list(tmp_path.iterdir()) == [folder] and not list(folder.iterdir())


def test_sweep_config_that_is_a_folder_or_binary(tmp_path, h5):
    r = runner.invoke(app, ["sweep", str(h5), "--config", str(tmp_path)])
    assert "folder" in one_line_error(r, 2)
    path = tmp_path / "s.json"
    path.write_bytes(b"\xff\xfe")
    r = runner.invoke(app, ["sweep", str(h5), "--config", str(path)])
    assert "UTF-8" in one_line_error(r, 2)


def test_range_errors_are_one_line_through_a_real_process():
    proc = subprocess.run([sys.executable, "-m", "lvtime", "finetune", "--rank", "0"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("lvtime: error: ") and proc.stderr.count("\n") == 1, proc.stderr


# --- smaller -------------------------------------------------------------------------------


def test_decode_takes_ascii_digits_only():
    from lvtime import llmtime

    d = llmtime.decode("\u0661.00,2.00;1.00,2.00")
    assert d.steps.tolist() == [1] and len(d.dropped) == 1


def test_decode_table_is_bounded_for_long_text():
    text = ";".join("1.00,2.00" for _ in range(5000))
    r = runner.invoke(app, ["decode", text])
    assert r.exit_code == 0 and len(r.stdout.splitlines()) < 80 and "--json" in r.stdout


def test_markdown_export_escapes_labels():
    Ledger().add(1.0, "evil | label\nsecond line")
    r = runner.invoke(app, ["ledger", "export", "--format", "md"])
    row = [line for line in r.stdout.splitlines() if "evil" in line][0]
    assert "evil \\| label\\x0asecond line" in row and row.count(" | ") == 5  # as in a sweep's results.md


def test_resume_after_kill_drops_the_redone_metrics_rows(tmp_path):
    path = tmp_path / layout.METRICS_LOG
    rows = [{"step": 0, "val_loss": 1.0}, {"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}, {"step": 3, "loss": 1.2}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 4, "lo')
    layout.trim_metrics(tmp_path, 2)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [0, 1, 2]


def test_interrupted_error_class_keeps_exit_code_130():
    assert Interrupted("x").exit_code == 130 and ModelError("x").exit_code == 1
