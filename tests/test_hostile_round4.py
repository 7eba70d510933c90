"""Hostile inputs, round four (issue 27): names and files are untrusted wherever they are
shown, pasted, linked, read or charged. One section per defect class; each class is
fixed in one place, and each test tries several members of the class."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny import TINY_CLI as TINY
from typer.testing import CliRunner

from lvtime import folders, layout, shell, simulation
from lvtime.cli import app

runner = CliRunner()

# names a user (or whoever handed over a folder) can choose
HOSTILE_NAMES = [
    "x$(touch P)",
    "a b",
    "it's",
    'q"uote',
    "semi;colon",
    "new\nline",
    "-dash",
    "back`tick`",
    "[red]x",
]


def argv_of(line: str, cwd: Path) -> list[str]:
    """What bash makes of a printed command line: its ``lvtime`` called with which argv."""
    assert "\n" not in line, "a command must be one line"
    script = 'lvtime() { for a in "$@"; do printf \'%s\\0\' "$a"; done; }\n' + line
    out = subprocess.run(["bash", "-c", script], cwd=cwd, capture_output=True, check=True).stdout
    return out.decode().split("\0")[:-1]


# --- 1. printed commands paste as exactly the argv they mean -------------------------------


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(st.characters(exclude_characters="\0", codec="utf-8"), max_size=12), max_size=4))
def test_any_argv_survives_the_shell_on_one_line(tmp_path_factory, words):
    where = tmp_path_factory.mktemp("sh")
    line = shell.command_line(["lvtime", *words])
    assert argv_of(line, where) == words
    assert list(where.iterdir()) == []  # nothing ran


def test_a_sweeps_job_lines_and_best_command_keep_hostile_paths_whole(h5, tmp_path):
    for k, name in enumerate(HOSTILE_NAMES):
        data = tmp_path / f"d{k}" / f"{name}.h5"
        data.parent.mkdir()
        data.write_bytes(h5.read_bytes())
        out = tmp_path / f"s{k}" / name
        r = runner.invoke(app, ["sweep", str(data), *TINY, "--steps", "1", "--rank", "2,4", "--out", str(out),
                                "--print-commands"])  # fmt: skip
        assert r.exit_code == 0, r.output
        lines = r.stdout.splitlines()
        assert len(lines) == 2, lines  # one line per configuration, whatever the names hold
        for line in lines:
            argv = argv_of(line.split(" && ")[0], tmp_path)
            assert argv[argv.index("finetune") + 1] == str(data)
        assert not (tmp_path / "P").exists()


def test_a_resume_hint_pastes_as_the_run_folder(h5, tmp_path):
    from lvtime.training import _Books

    for name in HOSTILE_NAMES:
        books = _Books(None, tmp_path / name, None, None)
        hint = books.resume_hint().removeprefix("Resume with: ")
        assert argv_of(hint, tmp_path) == ["finetune", "--resume", str(tmp_path / name)]
    assert not (tmp_path / "P").exists()


# --- 2. user text is shown literally, never as markup ---------------------------------------


@pytest.mark.parametrize("label", ["[/b]", "[red]x[/red]", "[bold", "a[/]b", "[link=file:///etc]z[/link]"])
def test_a_label_with_markup_is_recorded_and_shown_as_typed(label, tmp_path):
    ledger = str(tmp_path / "l.json")
    r = runner.invoke(app, ["ledger", "add", "--flops", "1e9", "--label", label, "--ledger", ledger])
    assert r.exit_code == 0 and label in r.stdout, r.output
    for args in (["ledger", "--ledger", ledger], ["ledger", "export", "--ledger", ledger]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, r.output
        assert label in r.stdout.replace("\\|", "|")


def test_a_data_path_with_markup_is_printed_as_typed(h5, tmp_path):
    data = tmp_path / "e[red]y.h5"
    data.write_bytes(h5.read_bytes())
    r = runner.invoke(app, ["encode", str(data), "--series", "0", "--steps", "2", "-o", str(tmp_path / "x.txt")])
    assert r.exit_code == 0 and "e[red]y.h5" not in r.stdout  # (the output file is named, not the data)
    r = runner.invoke(app, ["sweep", str(data), *TINY, "--steps", "1", "--rank", "2,4", "--dry-run",
                            "--out", str(tmp_path / "[b]s")])  # fmt: skip
    assert r.exit_code == 0, r.output
    missing = runner.invoke(app, ["encode", str(tmp_path / "[bold]no.h5"), "--series", "0"])
    assert missing.exit_code != 0 and "[bold]no.h5" in missing.stderr


# --- 3. outputs are regular files ---------------------------------------------------------


def _specials(tmp_path: Path) -> list[Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return [Path("/dev/null"), fifo]


@pytest.mark.parametrize(
    "command",
    [
        lambda out, h5: ["simulate", str(out), "--n", "2", "--force"],
        lambda out, h5: ["encode", str(h5), "--series", "0", "-o", str(out), "--force"],
        lambda out, h5: ["encode", str(h5), "--series", "0", "-o", str(out)],
        lambda out, h5: ["ledger", "export", "-o", str(out), "--force"],
        lambda out, h5: ["report", str(h5.parent), "-o", str(out), "--force"],
    ],
)
def test_an_output_that_is_a_device_or_a_fifo_is_refused_not_replaced(command, h5, tmp_path):
    for special in _specials(tmp_path):
        kind = os.stat(special).st_mode
        r = subprocess.run(["lvtime", *command(special, h5)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "not a regular file" in r.stderr, r.stderr
        assert os.stat(special).st_mode == kind  # still a device / FIFO


# --- 4. the report trusts nothing in its study folder ---------------------------------------


def _forecast_folder(root: Path, name: str, doc: dict) -> Path:
    path = root / "runs" / name
    folders.create(path, "forecast")
    layout.write_json(path / layout.FORECAST_METRICS, doc)
    return path


GOOD_GAP = {"model": 2.0, "best_reference": "seasonal", "best_reference_score": 1.5, "ode_limit": 0.1}


def _page_and_doc(root: Path, cwd: Path | None = None) -> tuple[str, dict]:
    env = {**os.environ, "LVTIME_LEDGER": str(root / "lvtime-ledger.json")}
    run = dict(capture_output=True, text=True, timeout=120, env=env, cwd=cwd or root)
    r = subprocess.run(["lvtime", "report", str(root), "-o", str(root / "page.html"), "--force"], **run)
    assert r.returncode == 0, r.stderr
    j = subprocess.run(["lvtime", "report", str(root), "--json"], **run)
    assert j.returncode == 0, j.stderr
    return (root / "page.html").read_text(), json.loads(j.stdout)


def test_links_to_hostile_folder_names_are_relative_and_encoded(tmp_path):
    root = tmp_path / "study"
    names = ["javascript:alert(1)", "a#b", "q?x=1", "p%41", "new\nline", "data:text"]
    for name in names:
        _forecast_folder(root, name, {"metrics": {}, "gap": GOOD_GAP})
    page, _ = _page_and_doc(root)
    import re
    from urllib.parse import unquote

    hrefs = re.findall(r'href="([^"]*)"', page)
    linked = {unquote(h.replace("&amp;", "&")) for h in hrefs}
    for name in names:
        assert f"./runs/{name}" in linked, name  # each link leads to its own folder
    for h in hrefs:
        assert h.startswith("./") and not re.search(r"[#?\s]", h), h


def test_a_fifo_or_endless_file_in_a_study_is_a_note_not_a_hang(tmp_path):
    root = tmp_path / "study"
    fifo_run = _forecast_folder(root, "f", {"metrics": {}, "gap": GOOD_GAP})
    os.mkfifo(fifo_run / "series-0.png")
    zero_run = _forecast_folder(root, "z", {"metrics": {}, "gap": GOOD_GAP})
    os.symlink("/dev/zero", zero_run / "series-0.png")
    piped = _forecast_folder(root, "m", {})
    (piped / layout.FORECAST_METRICS).unlink()
    os.mkfifo(piped / layout.FORECAST_METRICS)
    page, doc = _page_and_doc(root)
    notes = {f["path"]: f["notes"] for f in doc["forecasts"]}
    assert "not a regular file" in notes["runs/m"][0]
    assert page.count("not a regular file") >= 2  # the pictured figure and the FIFO'd metrics


@pytest.mark.parametrize(
    "doc, what",
    [
        ({"metrics": {}, "gap": {"model": "x"}}, "gap.model"),
        ({"metrics": {}, "gap": {"model": 1e308}}, "gap.model"),
        ({"metrics": {}, "gap": GOOD_GAP, "flops": [1]}, "flops"),
        ({"metrics": {"model": {"prey": {"mae": {"median": "?"}}}}, "gap": GOOD_GAP}, "metrics.model.prey.mae"),
        ({"metrics": {"model": []}, "gap": GOOD_GAP}, "metrics.model"),
        ({"metrics": {}, "gap": GOOD_GAP, "n_series": -3}, "n_series"),
    ],
)
def test_a_forecast_file_of_the_wrong_shape_is_a_note(doc, what, tmp_path):
    root = tmp_path / "study"
    _forecast_folder(root, "bad", doc)
    _forecast_folder(root, "good", {"metrics": {}, "gap": GOOD_GAP, "flops": 5e9})
    _, report = _page_and_doc(root)
    by_path = {f["path"]: f for f in report["forecasts"]}
    assert what in by_path["runs/bad"]["notes"][0] and by_path["runs/bad"]["score"] is None
    assert by_path["runs/good"]["score"] == 2.0


def test_a_sweep_and_a_run_with_wrong_types_are_notes(tmp_path):
    root = tmp_path / "study"
    sweep = root / "runs" / "sw"
    folders.create(sweep, "sweep")
    layout.write_json(sweep / layout.SWEEP, {"base": {}, "grid": {"rank": [2]}, "search": "grid"})
    layout.write_json(layout.results_path(sweep, "json"), [{"run": "r2", "flops": "lots"}])
    run = root / "runs" / "r"
    folders.create(run, "finetune")
    (run / layout.METRICS_LOG).write_text('{"step": 1, "flops": 1e308}\n{"step": "two"}\n{"step": 3, "flops": 2.0}\n')
    _, report = _page_and_doc(root)
    assert "results.json" in report["sweeps"][0]["notes"][0] and report["sweeps"][0]["results"] == []
    r = report["runs"][0]
    assert "2 row(s)" in r["notes"][-1] and r["steps"] == 3


def test_a_study_reported_from_elsewhere_finds_its_forecasts_adapters(tmp_path):
    root = tmp_path / "study"
    run = root / "runs" / "a"
    folders.create(run, "finetune")
    _forecast_folder(root, "a/forecast", {"metrics": {}, "gap": GOOD_GAP, "adapter": "runs/a/final"})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _, report = _page_and_doc(root, cwd=elsewhere)
    assert report["forecasts"][0]["adapter_run"] == "runs/a"
    assert report["runs"][0]["best_score"] == 2.0  # the run keeps its score


# --- 5. a search's storage and folder are checked before anything is made -----------------

SEARCH = ["--steps", "2", "--lr", "1e-4,1e-3", "--search", "random", "--trials", "2"]


@pytest.mark.parametrize(
    "storage, said",
    [
        ("foo://bar", "unknown database"),
        ("", "not a database URL"),
        ("runs/search.db", "not a database URL"),
        ("sqlite:////nonexistent/x.db", "does not exist"),
        ("sqlite://", "name a database file"),
        ("mysql://u@127.0.0.1/db", "is not installed"),
        ("postgresql+psycopg2://u@127.0.0.1:1/db", "cannot reach the database"),
    ],
)
def test_a_storage_that_cannot_work_is_one_line_before_any_folder(storage, said, h5, tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "s"
    for extra in (["--dry-run"], []):
        r = runner.invoke(app, ["sweep", str(h5), *TINY, *SEARCH, "--out", str(out), "--storage", storage, *extra])
        assert r.exit_code == 2 and said in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.output
        assert not out.exists() and not (tmp_path / "lvtime-ledger.json").exists()


def test_a_journal_lvtime_cannot_read_is_one_line(h5, tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "s"
    assert runner.invoke(app, ["sweep", str(h5), *TINY, *SEARCH, "--out", str(out), "--print-commands"]).exit_code == 0
    for garbage in (b"{not json\n", b'{"op_code": 0, "worker_id": "x", "study_name": "s"', b"\xff\xfe\n"):
        (out / layout.SEARCH_JOURNAL).write_bytes(garbage)
        r = runner.invoke(app, ["sweep", str(h5), *TINY, *SEARCH, "--out", str(out)])
        assert r.exit_code == 1 and "cannot be read as the search's record" in r.stderr, r.output


@pytest.mark.parametrize(
    "change, named",
    [(["--lr", "1e-4,1e-2"], "space lr="), (["--lr", "1e-4,1e-3", "--rank", "2"], "fixed options rank="),
     (["--lr", "1e-4,1e-3", "--prune", "asha"], "prune")],
)  # fmt: skip
def test_a_search_rerun_with_another_space_is_refused_naming_it(change, named, h5, tmp_path):
    pytest.importorskip("optuna")
    out = tmp_path / "s"
    first = ["sweep", str(h5), *TINY, "--steps", "2", "--search", "random", "--trials", "2", "--out", str(out)]
    assert runner.invoke(app, [*first, "--lr", "1e-4,1e-3", "--print-commands"]).exit_code == 0
    before = (out / layout.SWEEP).read_text()
    r = runner.invoke(app, [*first, *change])
    assert r.exit_code == 2 and named in r.stderr, r.output
    assert (out / layout.SWEEP).read_text() == before  # the search's record is untouched


def test_a_cap_that_fits_no_trial_exits_3_like_a_grid(h5, tmp_path):
    pytest.importorskip("optuna")
    tiny = str(tmp_path / "tiny.json")
    assert runner.invoke(app, ["ledger", "init", "--budget", "1e3", "--ledger", tiny]).exit_code == 0
    grid = runner.invoke(app, ["sweep", str(h5), *TINY, "--steps", "2", "--lr", "1e-4,1e-3", "--out",
                               str(tmp_path / "g"), "--ledger", tiny])  # fmt: skip
    assert grid.exit_code == 3
    for extra in (["--max-flops", "1e3"], ["--ledger", tiny]):
        out = tmp_path / f"s{len(extra[1])}"
        r = runner.invoke(app, ["sweep", str(h5), *TINY, *SEARCH, "--out", str(out), *extra])
        assert r.exit_code == grid.exit_code and "no trial of the search fits" in r.stderr, r.output
        assert not out.exists()


# --- 6. nothing refused or not done is charged; an interrupted evaluation is charged once -


def _entries(ledger: Path) -> list[dict]:
    return json.loads(ledger.read_text())["entries"] if ledger.exists() else []


@pytest.mark.parametrize(
    "bad",
    [["--num-samples", "1000"], ["--num-samples", "2", "--temperature", "0"], ["--history", "100000"]],
)
def test_a_forecast_refused_for_its_options_reserves_nothing(bad, small_h5, tmp_path):
    ledger = tmp_path / "l.json"
    r = runner.invoke(app, ["baseline", str(small_h5), "--model", "tiny-qwen2", "--limit", "2", "--ledger", str(ledger),
                            *bad])  # fmt: skip
    assert r.exit_code == 2, r.output
    assert _entries(ledger) == []


def test_an_adapter_that_does_not_load_is_not_charged(h5, tmp_path):
    from tiny import finetune_cfg

    from lvtime.finetune_run import finetune

    run = tmp_path / "r"
    finetune(finetune_cfg(h5, run, steps=1))
    config = run / "final" / "adapter_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "r": 3}))  # its tensors are rank 4
    ledger = tmp_path / "l.json"
    r = runner.invoke(app, ["forecast", str(h5), "--adapter", str(run / "final"), "--history", "5", "--horizon", "3",
                            "--limit", "2", "--ledger", str(ledger), "--quiet"])  # fmt: skip
    assert r.exit_code == 1, r.output
    (entry,) = _entries(ledger)
    assert entry["status"] == "failed" and entry["spent_flops"] == 0.0


def test_a_stop_during_step_0s_evaluation_is_charged_once(small_h5, tmp_path, monkeypatch):
    import signal

    from tiny import finetune_cfg

    from lvtime import forecast_eval
    from lvtime.errors import Interrupted
    from lvtime.finetune_run import finetune
    from lvtime.ledger import Ledger

    options = dict(steps=2, forecast_every=1, forecast_series=2, history=10)
    finetune(finetune_cfg(small_h5, tmp_path / "whole", **options))
    whole = sum(e.counted for e in Ledger().read().entries)
    evaluate = forecast_eval.evaluate

    def signalled(*args, **kwargs):  # SIGTERM arrives while step 0's forecast runs
        os.kill(os.getpid(), signal.SIGTERM)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(forecast_eval, "evaluate", signalled)
    out = tmp_path / "stopped"
    with pytest.raises(Interrupted, match="after step 0"):
        finetune(finetune_cfg(small_h5, out, **options))
    monkeypatch.setattr(forecast_eval, "evaluate", evaluate)
    finetune(finetune_cfg(small_h5, out, **options), resume=True)
    entries = [e for e in Ledger().read().entries if str(out) in e.outputs[0]]
    assert [e.status for e in entries] == ["interrupted", "completed"]
    assert sum(e.counted for e in entries) == pytest.approx(whole, rel=1e-12)  # not a FLOP twice
    rows = layout.read_metrics(out)
    assert [r["step"] for r in rows if "forecast_score" in r] == [0, 1, 2]


# --- 7. resume: the original command is accepted, a change is named, the run ends whole ---


def test_resume_accepts_the_original_command_and_names_a_change(h5, tmp_path):
    out = tmp_path / "r"
    first = ["finetune", str(h5), *TINY, "--steps", "1", "--rank", "2", "--out", str(out)]
    assert runner.invoke(app, first).exit_code == 0
    again = runner.invoke(app, [*first[:-2], "--resume", str(out), "--steps", "2"])
    assert again.exit_code == 0, again.output  # data, model, rank as recorded: accepted
    for flag, value, said in (("--rank", "4", "--rank is 2, not 4"), ("--context", "64", "--context is 32, not 64")):
        r = runner.invoke(app, ["finetune", str(h5), "--resume", str(out), flag, value, "--steps", "3"])
        assert r.exit_code == 2 and said in r.stderr, r.output
    other = tmp_path / "other.h5"
    other.write_bytes(h5.read_bytes())
    r = runner.invoke(app, ["finetune", str(other), "--resume", str(out), "--steps", "3"])
    assert r.exit_code == 2 and "other.h5" in r.stderr


@pytest.mark.parametrize("key, value", [("scale", "species"), ("context", 64), ("lr", 0.5)])
def test_a_hand_edited_config_does_not_resume_against_checkpoints_made_otherwise(key, value, h5, tmp_path):
    out = tmp_path / "r"
    assert runner.invoke(app, ["finetune", str(h5), *TINY, "--steps", "1", "--out", str(out)]).exit_code == 0
    doc = json.loads((out / layout.CONFIG).read_text())
    doc["config"][key] = value
    (out / layout.CONFIG).write_text(json.dumps(doc))
    r = runner.invoke(app, ["finetune", "--resume", str(out), "--steps", "2"])
    assert r.exit_code == 2 and f"{key} is" in r.stderr and "checkpoint step-1" in r.stderr, r.output


def test_resume_steps_below_or_at_the_checkpoint(h5, tmp_path):
    from lvtime.run_state import RunState

    out = tmp_path / "r"
    runner.invoke(app, ["finetune", str(h5), *TINY, "--steps", "4", "--eval-every", "4", "--out", str(out)])
    (out / layout.SUMMARY).unlink()  # as if stopped after step 4's checkpoint was written, before the end
    r = runner.invoke(app, ["finetune", "--resume", str(out), "--steps", "2"])
    assert r.exit_code == 2 and "already at step 4" in r.stderr, r.output
    import shutil

    from lvtime import checkpoints

    shutil.rmtree(checkpoints.folder(out, 4))  # keep step 2's checkpoint only (taken at --save-every 2)
    r = runner.invoke(app, ["finetune", str(h5), *TINY, "--steps", "2", "--save-every", "1", "--out", str(out),
                            "--force"])  # fmt: skip
    assert r.exit_code == 0, r.output
    (out / layout.SUMMARY).unlink()
    state = checkpoints.read_state(checkpoints.folder(out, 2))
    history = RunState.model_validate(state["history"])
    history.val_losses = {k: v for k, v in history.val_losses.items() if k != "2"}  # stopped before its validation
    state["history"] = history.to_checkpoint()
    import torch

    torch.save(state, checkpoints.folder(out, 2) / checkpoints.STATE_FILE)
    r = runner.invoke(app, ["finetune", "--resume", str(out), "--steps", "2"])
    assert r.exit_code == 0, r.output
    assert 2 in {row["step"] for row in layout.read_metrics(out) if "val_loss" in row}
    assert layout.read_summary(out).val_loss_after is not None


# --- 8. numbers and lengths at the edges ----------------------------------------------------


def test_numbers_that_overflow_are_refused_or_dropped_and_json_stays_json(tmp_path):
    def strict(text):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))

    for alpha in ("1e308", "1e300"):
        r = runner.invoke(app, ["decode", "1.00,2.00;3.00,4.00", "--alpha", alpha, "--json"])
        assert r.exit_code == 0
        doc = strict(r.stdout)
        assert all(v is None or abs(v) < float("inf") for v in doc["prey"] + doc["predator"])
    r = runner.invoke(app, ["decode", "1" + "9" * 400 + ".00,2.00;1.00,2.00", "--json"])
    assert strict(r.stdout)["steps"] == [1] and "overflows" in strict(r.stdout)["dropped"][0]["reason"]
    for alpha in ("1e-320", "5e-324"):
        r = runner.invoke(app, ["encode", "--prey", "1,2", "--predator", "1,2", "--alpha", alpha])
        assert r.exit_code == 2 and "overflow" in r.stderr, r.output


def test_an_empty_split_and_a_prompt_longer_than_the_model_are_one_line(tmp_path):
    from lvtime import data

    one, long = tmp_path / "one.h5", tmp_path / "long.h5"
    data.save_dataset(one, simulation.simulate(n=1, points=20, seed=1))
    data.save_dataset(long, simulation.simulate(n=2, points=3000, seed=1))
    for args in (["encode", str(one), "--split", "val"], ["encode", str(one), "--split", "test", "--json"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "split of 1 series is empty" in r.stderr, r.output
    for history in ("2000", "400"):  # 2000: refused before tokenizing; 400: once the prompt is known
        r = runner.invoke(app, ["baseline", str(long), "--model", "tiny-qwen2", "--series", "0", "--history", history,
                                "--horizon", "40", "--dry-run"])  # fmt: skip
        assert r.exit_code == 2 and "takes at most 4096" in r.stderr, r.output


# --- 9. a figure never fails a run --------------------------------------------------------


def test_a_figure_that_cannot_be_drawn_is_a_warning_and_the_run_completes(h5, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    import matplotlib.figure

    def broken(*args, **kwargs):
        raise ValueError("cannot draw this")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    ledger = tmp_path / "l.json"
    r = runner.invoke(app, ["finetune", str(h5), *TINY, "--steps", "1", "--out", str(tmp_path / "r"), "--ledger",
                            str(ledger)])  # fmt: skip
    assert r.exit_code == 0 and "figure not drawn" in r.stderr, r.output
    assert [e["status"] for e in _entries(ledger)] == ["completed"]
    baseline = ["baseline", str(h5), "--model", "tiny-qwen2", "--history", "5", "--horizon", "3", "--limit", "2"]
    r = runner.invoke(app, [*baseline, "--out", str(tmp_path / "b"), "--ledger", str(ledger), "--quiet"])
    assert r.exit_code == 0 and [e["status"] for e in _entries(ledger)] == ["completed", "completed"], r.output


# --- 10. a name never acts on the terminal ------------------------------------------------

# an escape sequence (clear screen, set the title), a carriage return and a line that forges another
TERMINAL_NAMES = ["a\x1b[2Jb", "t\x1b]0;owned\x07u", "over\rwrite", "two\nlvtime: ok"]


def _inert(text: str) -> bool:
    """Nothing a terminal acts on, and no line but the ones lvtime wrote."""
    return not any(c in text for c in "\x1b\x07\r") and "\nlvtime: ok" not in text


@pytest.mark.parametrize("name", TERMINAL_NAMES)
def test_a_label_with_control_characters_is_shown_escaped(name, tmp_path):
    ledger = str(tmp_path / "l.json")
    r = runner.invoke(app, ["ledger", "add", "--flops", "1e9", "--label", name, "--ledger", ledger])
    assert r.exit_code == 0 and _inert(r.stdout), r.output
    assert shell.escape_control(name) in r.stdout  # shown, as \xNN
    for args in (["ledger", "--ledger", ledger], ["ledger", "export", "--ledger", ledger]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0 and _inert(r.stdout), r.output


@pytest.mark.parametrize("name", TERMINAL_NAMES)
def test_a_missing_data_path_is_one_inert_line_whose_hint_pastes(name, tmp_path):
    data = tmp_path / name / "d.h5"
    r = runner.invoke(app, ["stats", str(data)])
    assert r.exit_code != 0 and _inert(r.stderr), r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("lvtime: error: ")
    hint = r.stderr.split("`")[1]  # "... (create one with `lvtime simulate PATH`)"
    assert argv_of(hint, tmp_path) == ["simulate", str(data)]


@pytest.mark.parametrize("name", TERMINAL_NAMES)
def test_written_and_described_files_are_named_inertly(name, tmp_path):
    data = tmp_path / name / "d.h5"
    data.parent.mkdir()
    r = runner.invoke(app, ["simulate", str(data), "--n", "4", "--points", "12"])
    assert r.exit_code == 0 and _inert(r.stdout), r.output
    r = runner.invoke(app, ["stats", str(data)])
    assert r.exit_code == 0 and _inert(r.stdout), r.output
    assert shell.escape_control(str(data)) in r.stdout.replace("\n", "") or data.name in r.stdout
