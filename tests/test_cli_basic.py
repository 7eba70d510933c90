"""encode / decode / simulate / flops / ledger through CliRunner and a real subprocess."""

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lvtime.cli import app

runner = CliRunner()


def run(*args, input=None):
    return runner.invoke(app, [str(a) for a in args], input=input)


def test_simulate_refuses_overwrite(tmp_path):
    out = tmp_path / "d.h5"
    r = run("simulate", out, "--n", 10, "--points", 20, "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["n_series"] == 10
    r = run("simulate", out, "--n", 10)
    assert r.exit_code == 2 and "already exists" in r.output
    assert run("simulate", out, "--n", 5, "--force").exit_code == 0


def test_encode_inline_json_and_tokens():
    r = run("encode", "--prey", "2.9,3.2,3.8,4.5,5.1", "--predator", "1.1,0.9,0.7,0.6,0.5", "--json", "--tokens")
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["text"] == "5.82,2.21;6.43,1.81;7.63,1.41;9.04,1.20;10.24,1.00"
    assert doc["alpha"] == pytest.approx(0.498)
    assert doc["n_tokens"] == 50 and doc["token_ids"][:4] == [20, 13, 23, 17]


def test_encode_dataset_split_jsonl_and_file(small_h5, tmp_path):
    r = run("encode", small_h5, "--split", "test", "--jsonl")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert r.exit_code == 0 and [x["series"] for x in lines] == [18, 19]
    out = tmp_path / "texts.txt"
    r = run("encode", small_h5, "--all", "-o", out)
    assert r.exit_code == 0 and len(out.read_text().splitlines()) == 20
    r = run("encode", small_h5, "--series", 3, "--alpha-mode", "global", "--json")
    assert r.exit_code == 0


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["encode", "--prey", "1,2"], 2, "go together"),
        (["encode", "--prey", "1,x", "--predator", "1,2"], 2, "--prey value 2: Input should be a valid number"),
        (["encode", "--prey", "1,2,3", "--predator", "1,2"], 2, "equal"),
        (["encode", "missing.h5", "--series", "1"], 1, "no such file"),
        (["encode", "{h5}", "--series", "99"], 2, "out of range"),
        (["encode", "{h5}"], 2, "exactly one of"),
        (["decode", "1.00,2.00", "--alpha", "-1"], 2, "--alpha value 1: Input should be greater than 0"),
        (["flops", "--mode", "sideways"], 2, "--mode"),
        (["flops", "--convention", "vibes"], 2, "convention"),
        (["flops", "--model", "nope"], 2, "unknown model"),
        (["flops", "--model", " "], 2, "model: empty"),
        (["finetune", "{h5}", "--model", "", "--dry-run"], 2, "model: empty; name a hub id"),
        (["baseline", "{h5}", "--model", "", "--dry-run"], 2, "model: empty; name a hub id"),
    ],
)
def test_errors_are_one_line_with_exit_codes(small_h5, args, code, message):
    args = [a.replace("{h5}", str(small_h5)) for a in args]
    proc = subprocess.run([sys.executable, "-m", "lvtime", *args], capture_output=True, text=True)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("lvtime: error: ") and proc.stderr.strip().count("\n") == 0


def test_decode_stdin_and_report():
    r = run("decode", "-", "--alpha", "2", "--json", input="1.00,2.00;3.0")
    doc = json.loads(r.stdout)
    assert r.exit_code == 0 and doc["prey"] == [2.0] and doc["predator"] == [4.0]
    assert doc["total_steps"] == 2 and len(doc["dropped"]) == 1


def test_flops_json_matches_library():
    from lvtime import flops

    r = run("flops", "--seq", 512, "--batch", 4, "--steps", 10, "--json")
    doc = json.loads(r.stdout)
    step = flops.train_step_flops(flops.PRESETS["qwen2.5-0.5b-instruct"], 512, 4, flops.LoraSpec(rank=4))
    assert doc["train_step"] == step and doc["run"] == 10 * step
    assert doc["budget_fraction"] == pytest.approx(10 * step / 1e17)
    r = run("flops", "--mode", "generate", "--seq", 100, "--new-tokens", 10, "--json")
    doc = json.loads(r.stdout)
    assert doc["run"] == pytest.approx(doc["prefill"] + doc["decode"])
    numeric = json.loads(run("flops", "--head", "numeric", "--json").stdout)
    assert numeric["head_vocab"] == 14 and numeric["forward"] < json.loads(run("flops", "--json").stdout)["forward"]


def test_flops_table_uses_the_ledgers_budget():
    assert run("ledger", "init", "--budget", "2e17").exit_code == 0
    doc = json.loads(run("flops", "--json").stdout)
    assert doc["budget"] == 2e17
    r = run("flops", "--seq", 768)
    assert r.exit_code == 0 and "lm_head" in r.stdout and "training step" in r.stdout


def test_ledger_commands(tmp_path):
    assert run("ledger", "add", "--flops", "4.22e15", "--label", "elsewhere", "--steps", "100").exit_code == 0
    doc = json.loads(run("ledger", "--json").stdout)
    assert doc["spent"] == 4.22e15 and doc["entries"][0]["label"] == "elsewhere"
    r = run("ledger")
    assert r.exit_code == 0 and "elsewhere" in r.stdout
    md = run("ledger", "export", "--format", "md").stdout
    assert "| elsewhere | manual | 100 | 4.22e15 | 4.22% |" in md and "Remaining budget" in md
    csv_text = run("ledger", "export", "--format", "csv").stdout
    assert csv_text.splitlines()[0].startswith("experiment,kind,status,steps,flops")
    assert run("ledger", "init", "--budget", "1e16").exit_code == 2  # has entries
    assert run("ledger", "init", "--budget", "1e16", "--force").exit_code == 0


def test_corrupt_ledger_is_a_clean_error(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{oops")
    proc = subprocess.run(
        [sys.executable, "-m", "lvtime", "ledger", "--ledger", str(path)], capture_output=True, text=True
    )
    assert proc.returncode == 1 and "corrupt" in proc.stderr and path.read_text() == "{oops"


def test_console_script_and_fast_commands_do_not_import_torch(tmp_path):
    exe = os.path.join(os.path.dirname(sys.executable), "lvtime")
    cmd = [exe] if os.path.exists(exe) else [sys.executable, "-m", "lvtime"]
    proc = subprocess.run([*cmd, "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.startswith("lvtime ")
    probe = (
        "import sys\n"
        "from lvtime.cli import app\n"
        "from typer.testing import CliRunner\n"
        "r = CliRunner()\n"
        "for args in (['flops', '--seq', '768'], ['encode', '--prey', '1,2', '--predator', '2,1'],"
        " ['decode', '1.00,2.00'], ['ledger'], ['simulate', sys.argv[1], '--n', '5', '--points', '20'],"
        " ['stats', sys.argv[1]]):\n"
        "    assert r.invoke(app, args).exit_code == 0, args\n"
        "print(','.join(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    env = {**os.environ, "LVTIME_LEDGER": str(tmp_path / "l.json")}
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(tmp_path / "s.h5")], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_tables_at_80_columns_drop_columns_rather_than_cut_values(monkeypatch):
    import io

    from rich.console import Console
    from rich.table import Table

    from lvtime.cli import output

    buf = io.StringIO()
    monkeypatch.setattr(output.console, "_console", Console(file=buf, width=80, force_terminal=False))
    table = Table("id", "label", "kind", "status", "estimate", "spent", "% budget")
    entry_id, label = "20261202-082640-9e17bf", "sweep sweep-rank-lr: r2-lr0.0001-ctx256"
    table.add_row(entry_id, label, "finetune", "completed", "1.20e15", "1.20e15", "1.2%")
    output.print_table(table, optional=("estimate", "kind", "% budget"), whole=("id",))
    text = buf.getvalue()
    assert "…" not in text and entry_id in text and max(map(len, text.splitlines())) <= 80
    assert "estimate" not in text and "completed" in text  # an optional column went, the state stayed
    assert "".join(text.split()).count("r2-lr0.0001-ctx256") == 1  # wrapped, whole


def test_a_table_in_a_pipe_prints_every_value_whole(tmp_path):
    label = "sweep sweep-rank-lr: r2-lr0.0001-ctx256 " + "x" * 60
    ledger = str(tmp_path / "l.json")
    run("ledger", "add", "--flops", "1e15", "--label", label, "--ledger", ledger)
    proc = subprocess.run(
        [sys.executable, "-m", "lvtime", "ledger", "--ledger", ledger], capture_output=True, text=True
    )
    assert proc.returncode == 0 and label in proc.stdout and "…" not in proc.stdout
