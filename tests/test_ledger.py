import json
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvtime.errors import BudgetError, LedgerError
from lvtime.ledger import Ledger, report_rows


def test_reserve_finish_and_totals(tmp_path):
    lg = Ledger(tmp_path / "l.json")
    e = lg.reserve("run a", 4e16, kind="finetune", config={"steps": 10})
    t = lg.read().totals()
    assert t["reserved"] == 4e16 and t["spent"] == 0 and t["remaining"] == 6e16
    lg.finish(e.id, 3.5e16)
    t = lg.read().totals()
    assert t["reserved"] == 0 and t["spent"] == 3.5e16 and t["remaining"] == 6.5e16
    entry = lg.read().entries[0]
    assert entry.status == "completed" and entry.ended_at and entry.config == {"steps": 10}


def test_over_budget_refused_unless_allowed(tmp_path):
    lg = Ledger(tmp_path / "l.json")
    lg.init(1e10)
    lg.reserve("a", 6e9)
    with pytest.raises(BudgetError) as exc:
        lg.reserve("b", 5e9)
    assert exc.value.exit_code == 3
    assert len(lg.read().entries) == 1  # nothing written on refusal
    e = lg.reserve("b", 5e9, allow_over_budget=True)
    assert e.over_budget and lg.read().totals()["remaining"] < 0


def test_dead_process_keeps_its_reservation_and_is_stale(tmp_path):
    path = tmp_path / "l.json"
    code = f"import os; from lvtime.ledger import Ledger; Ledger({str(path)!r}).reserve('doomed', 1e15); os._exit(9)"
    subprocess.run([sys.executable, "-c", code], check=False)
    data = Ledger(path).read()
    (entry,) = data.entries
    assert entry.status == "running" and entry.is_stale()
    assert data.totals()["reserved"] == 1e15  # never under-count


@pytest.mark.parametrize(
    "content", ["", "{", '{"schema": "other"}', "[1, 2]", '{"schema": "lvtime-ledger/1", "budget": "lots"}']
)
def test_corrupt_or_foreign_file_is_reported_and_kept(tmp_path, content):
    path = tmp_path / "l.json"
    path.write_text(content)
    lg = Ledger(path)
    with pytest.raises(LedgerError) as exc:
        lg.reserve("x", 1.0)
    assert str(path) in str(exc.value)
    assert path.read_text() == content


@pytest.mark.slow
def test_twenty_concurrent_processes_lose_nothing(tmp_path):
    path = tmp_path / "l.json"
    env = {**os.environ, "LVTIME_LEDGER": str(path)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "lvtime", "ledger", "add", "--flops", str(1e12 * (i + 1)), "--label", f"job {i}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for i in range(20)
    ]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read()
    data = Ledger(path).read()
    assert sorted(e.label for e in data.entries) == sorted(f"job {i}" for i in range(20))
    assert data.totals()["spent"] == pytest.approx(1e12 * 210)
    assert not list(tmp_path.glob("*.tmp"))


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1e16), st.booleans()), max_size=12))
def test_totals_are_consistent(tmp_path_factory, ops):
    lg = Ledger(tmp_path_factory.mktemp("l") / "l.json")
    spent = reserved = 0.0
    for flops, finish in ops:
        e = lg.reserve("x", flops, allow_over_budget=True)
        if finish:
            lg.finish(e.id, flops / 2)
            spent += flops / 2
        else:
            reserved += flops
    t = lg.read().totals()
    assert t["spent"] == pytest.approx(spent) and t["reserved"] == pytest.approx(reserved)
    assert t["remaining"] == pytest.approx(1e17 - spent - reserved)
    if ops:
        json.loads(lg.path.read_text())


def test_report_rows(tmp_path):
    lg = Ledger(tmp_path / "l.json")
    for label, kind in [("r4 lr1e-4", "finetune"), ("baseline", "baseline"), ("final r8", "finetune")]:
        e = lg.reserve(label, 1e15, kind=kind, config={"steps": 100})
        lg.finish(e.id, 1e15)
    rows = report_rows(lg.read())
    names = [r["experiment"] for r in rows]
    assert names == [
        "r4 lr1e-4",
        "Subtotal before the final run",
        "final r8",
        "Training total",
        "baseline",
        "Total",
        "Remaining budget",
    ]
    assert rows[1]["flops"] == 1e15 and rows[-2]["flops"] == 3e15
    assert rows[-1]["flops"] == pytest.approx(1e17 - 3e15)
