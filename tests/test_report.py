"""``lvtime report`` (issue 19): the page holds every run and ledger entry with the numbers
of ``lvtime ledger --json`` and the runs' own files (parsed, not string-matched), asks
the network for nothing, says what is missing, and writes nothing but ``-o``."""

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from typer.testing import CliRunner

pytest.importorskip("torch")

from lvtime import data, layout, simulation  # noqa: E402
from lvtime.cli import app  # noqa: E402

runner = CliRunner()


def lv(*args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    """A small study, built once: a baseline, two finetune runs, a forecast, a sweep."""
    root = tmp_path_factory.mktemp("study")
    h5, ledger = root / "lv.h5", root / "lvtime-ledger.json"
    data.save_dataset(h5, simulation.simulate(n=20, points=30, seed=1))
    common = ["--ledger", ledger, "--quiet"]
    tiny = ["--model", "tiny-qwen2", "--context", "32", "--batch-size", "2", "--val-series", "2", *common]
    short = ["--history", "10", "--horizon", "5", "--limit", "3", "--plot-series", "1", *common]
    lv("baseline", h5, "--model", "tiny-qwen2", *short, "--out", root / "runs/baseline")
    lv("finetune", h5, *tiny, "--steps", "2", "--out", root / "runs/a")
    in_training = ["--forecast-every", "1", "--forecast-series", "2", "--history", "10"]
    lv("finetune", h5, *tiny, "--steps", "1", "--rank", "2", *in_training, "--out", root / "runs/b")
    lv("forecast", h5, "--adapter", root / "runs/a/final", *short, "--out", root / "runs/a/forecast")
    sweep = ["sweep", h5, *tiny, "--steps", "1", "--rank", "2,4", "--history", "10", "--rank-by", "forecast"]
    lv(*sweep, "--forecast-series", "2", "--out", root / "runs/sweep")
    return root


class Page(HTMLParser):
    """Rows of every table (cells with their data-value), and every src/href."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: dict[str, list[dict]] = {}
        self.links: list[str] = []
        self._table = self._row = self._cell = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.links += [a[k] for k in ("src", "href") if k in a]
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id", f"t{len(self.tables)}"), [])
        elif tag == "tr" and self._table is not None:
            self._row = {"attrs": a, "cells": []}
        elif tag in ("td", "th") and self._row is not None:
            self._cell = {"value": a.get("data-value"), "text": ""}

    def handle_data(self, text):
        if self._cell is not None:
            self._cell["text"] += text

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row["cells"].append(self._cell)
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def rows(self, table: str, mark: str) -> dict[str, dict[str, dict]]:
        """``table``'s rows by their ``mark`` attribute, each a header -> cell dict: tests
        find cells by header, so column order is no API."""
        header = [c["text"] for c in self.tables[table][0]["cells"]]
        marked = (r for r in self.tables[table] if mark in r["attrs"])
        return {r["attrs"][mark]: dict(zip(header, r["cells"], strict=True)) for r in marked}


def report(folder: Path, *extra) -> tuple[Page, dict]:
    out = folder / "report.html"
    lv("report", folder, "--ledger", folder / "lvtime-ledger.json", "-o", out, "--force", *extra)
    doc = json.loads(lv("report", folder, "--ledger", folder / "lvtime-ledger.json", "--json").stdout)
    return Page(out.read_text()), doc


def test_the_page_holds_every_entry_and_run_with_their_own_numbers(study):
    page, doc = report(study)
    ledger = json.loads(lv("ledger", "--ledger", study / "lvtime-ledger.json", "--json").stdout)
    rows = page.rows("entries", "data-id")
    assert set(rows) == {e["id"] for e in ledger["entries"]} and len(rows) == 8  # 4 trainings, 4 forecasts
    for e in ledger["entries"]:
        cells = rows[e["id"]]
        assert float(cells["estimate"]["value"]) == e["estimated_flops"]
        assert float(cells["spent"]["value"]) == e["spent_flops"]
    assert {e["id"]: e["counted"] for e in doc["budget"]["entries"]} == {
        e["id"]: e["spent_flops"] for e in ledger["entries"]
    }
    assert doc["budget"]["spent"] == ledger["spent"] and doc["budget"]["remaining"] == ledger["remaining"]
    runs = page.rows("runs", "data-run")
    assert set(runs) == {"runs/a", "runs/b", "runs/sweep/r2", "runs/sweep/r4"}
    for path, cells in runs.items():
        summary = layout.read_summary(study / path)
        assert float(cells["FLOPs"]["value"]) == summary.flops_total and int(cells["steps"]["value"]) == summary.steps
        assert cells["state"]["text"] == "finished"
    forecasts = page.rows("forecasts", "data-run")
    assert len(forecasts) == 4  # baseline, forecast, the sweep's two ranking forecasts
    for path, cells in forecasts.items():
        gap = layout.read_forecast_metrics(study / path)["gap"]
        assert float(cells["MASE"]["value"]) == gap["model"]
        assert float(cells["its MASE"]["value"]) == gap["best_reference_score"]
    best_a = min(f["score"] for f in doc["forecasts"] if f["adapter_run"] == "runs/a")
    assert next(r for r in doc["runs"] if r["path"] == "runs/a")["best_score"] == best_a
    assert len(doc["frontier"]["points"]) == 4 and doc["frontier"]["zero_shot"] is not None
    b = next(r for r in doc["runs"] if r["path"] == "runs/b")  # scored during training only
    assert [p["step"] for p in doc["frontier"]["in_training"]] == [0, 1] and b["best_score_from"].startswith("step")
    assert b["best_score"] == layout.read_summary(study / "runs/b").best_score


def test_the_page_asks_the_network_for_nothing(study):
    page, _ = report(study)
    text = (study / "report.html").read_text()
    outside = re.sub(r'"data:image/png;base64,[A-Za-z0-9+/=]*"', "", text).replace("</", "")
    assert not re.search(r"(https?:)?//[a-z]|url\(|@import", outside), "a URL outside the page"
    for target in page.links:
        assert target.startswith(("data:image/png;base64,", "#")) or not re.match(r"[a-z]+:|/", target), target
        if not target.startswith(("data:", "#")):
            assert (study / target).exists(), target  # links lead to the study's own files
    assert any(t.startswith("data:image/png") for t in page.links)  # figures travel inside the page


def test_an_empty_folder_a_corrupt_summary_and_a_running_run_are_said_not_fatal(study, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    page, doc = report(empty)
    assert doc["runs"] == [] and not doc["budget"]["exists"]
    assert "no ledger at" in (empty / "report.html").read_text()
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    (copy / "runs/a" / layout.SUMMARY).write_text("{")
    from lvtime import folders

    with folders.held(copy / "runs/b"):  # as a finetune still training holds it
        page, doc = report(copy)
    runs = {r["path"]: r for r in doc["runs"]}
    assert "summary.json: corrupt" in runs["runs/a"]["notes"][0] and runs["runs/a"]["flops"] is not None
    assert runs["runs/b"]["state"] == "running"


def test_a_corrupt_ledger_is_the_one_line_error_of_every_command(tmp_path):
    (tmp_path / "lvtime-ledger.json").write_text("{")
    r = runner.invoke(app, ["report", str(tmp_path), "--ledger", str(tmp_path / "lvtime-ledger.json")])
    assert r.exit_code == 1 and r.stderr.startswith("lvtime: error: ") and "corrupt" in r.stderr
    assert not (tmp_path / "report.html").exists()


def test_the_report_writes_only_its_page_and_only_over_its_own(study, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(study, copy)
    before = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    out = copy / "page.html"
    lv("report", copy, "--ledger", copy / "lvtime-ledger.json", "-o", out)
    after = {p: p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert set(after) - set(before) == {out} and all(after[p] == before[p] for p in before)
    r = runner.invoke(app, ["report", str(copy), "-o", str(out)])
    assert r.exit_code == 2 and "already exists" in r.stderr  # its own page still needs --force
    r = runner.invoke(app, ["report", str(copy), "-o", str(tmp_path / "fresh" / "lvtime-ledger.json"), "--ledger",
                            str(tmp_path / "fresh" / "lvtime-ledger.json")])  # fmt: skip
    assert r.exit_code == 2 and "ledger's path" in r.stderr  # not even before the ledger exists
    notes = copy / "notes.html"
    notes.write_text("<p>my notes</p>")
    r = runner.invoke(app, ["report", str(copy), "-o", str(notes), "--force"])
    assert r.exit_code == 2 and notes.read_text() == "<p>my notes</p>"
    lv("report", copy, "--ledger", copy / "lvtime-ledger.json", "-o", out, "--force")


def test_open_shows_the_written_page_in_a_browser(tmp_path, monkeypatch):
    import webbrowser

    opened = []
    monkeypatch.setattr(webbrowser, "open", opened.append)
    r = runner.invoke(app, ["report", str(tmp_path), "--open"])
    assert r.exit_code == 0, r.output
    page = tmp_path / "report.html"
    assert opened == [page.resolve().as_uri()] and page.is_file()
    r = runner.invoke(app, ["report", str(tmp_path), "--json", "--open"])  # --json alone writes no page to open
    assert r.exit_code == 0 and len(opened) == 1
