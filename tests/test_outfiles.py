"""Single output files (simulate, encode -o, ledger export -o): refused when they exist,
replaced with --force only when lvtime wrote them, written atomically."""

import json

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from lvtime import data, outfiles, simulation
from lvtime.cli import app
from lvtime.errors import UsageError

runner = CliRunner()


def run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def notes(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("precious\n")
    return path


@pytest.fixture
def study_file(tmp_path):
    """An HDF5 file in the study's layout that lvtime did not write."""
    path = tmp_path / "lotka_volterra_data.h5"
    with h5py.File(path, "w") as f:
        f["trajectories"] = np.ones((3, 10, 2), np.float32)
        f["time"] = np.linspace(0, 1, 10)
    return path


def test_check_refuses_bad_paths(tmp_path, notes):
    with pytest.raises(UsageError, match="empty"):
        outfiles.check(" ", False, "encoding")
    with pytest.raises(UsageError, match="is a folder"):
        outfiles.check(tmp_path, True, "encoding")
    (tmp_path / "link.txt").symlink_to(notes)
    with pytest.raises(UsageError, match="symlink"):
        outfiles.check(tmp_path / "link.txt", True, "encoding")
    with pytest.raises(UsageError, match="already exists"):
        outfiles.check(notes, False, "encoding")
    with pytest.raises(UsageError, match="is a file, not a folder"):
        outfiles.check(notes / "x.txt", False, "encoding")
    assert outfiles.check(tmp_path / "new" / "x.txt", False, "encoding") == tmp_path / "new" / "x.txt"


@pytest.mark.parametrize(
    ("kind", "content", "replaceable"),
    [
        ("encoding", "2.02,1.73;2.91,2.08;\n3.85,2.63;\n", True),
        ("encoding", json.dumps([{"series": 0, "alpha": 1.0, "steps": 1, "text": "1,2"}]), True),
        ("encoding", "", True),
        ("encoding", "precious\n", False),
        ("encoding", "FLOP budget: 1e17\n", False),
        ("encoding", '{"budget": 1e17, "entries": []}', False),  # a ledger
        ("ledger-table", "FLOP budget: 1.00e17\n\n| Experiment |", True),
        ("ledger-table", "experiment,status,steps\n", True),
        ("ledger-table", "2.02,1.73;\n", False),
    ],
)
def test_force_replaces_only_what_the_command_writes(tmp_path, kind, content, replaceable):
    path = tmp_path / "out.txt"
    path.write_text(content)
    assert outfiles.written_by_lvtime(path, kind) is replaceable


def test_binary_files_are_never_replaced_as_text(tmp_path, study_file):
    blob = tmp_path / "adapter.safetensors"
    blob.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + bytes(range(256)))
    for path in (blob, study_file):
        assert not outfiles.written_by_lvtime(path, "encoding")
        assert not outfiles.written_by_lvtime(path, "ledger-table")


def test_a_multibyte_character_cut_at_the_sniffing_limit_is_still_text(tmp_path):
    path = tmp_path / "table.md"
    head = b"FLOP budget: 1e17\n\n"  # odd length: the 4096th byte is half of an "é"
    path.write_bytes(head + "é".encode() * 4096)
    assert len(head) % 2 == 1
    assert outfiles.written_by_lvtime(path, "ledger-table")


def test_simulate_force_replaces_its_own_dataset_but_not_the_studys(tmp_path, study_file):
    before = study_file.read_bytes()
    r = run("simulate", study_file, "--n", 4, "--points", 10, "--force")
    assert r.exit_code == 2 and "replaces only files lvtime wrote" in r.output
    assert study_file.read_bytes() == before
    own = tmp_path / "sim.h5"
    assert run("simulate", own, "--n", 4, "--points", 10).exit_code == 0
    assert run("simulate", own, "--n", 6, "--points", 10, "--force").exit_code == 0
    assert data.load_dataset(own).n_series == 6


def test_encode_never_overwrites_a_users_file(tmp_path, notes, study_file):
    sim = tmp_path / "sim.h5"
    data.save_dataset(sim, simulation.simulate(n=3, points=10, seed=0))
    r = run("encode", sim, "--series", 0, "-o", notes)
    assert r.exit_code == 2 and "already exists" in r.output
    r = run("encode", sim, "--series", 0, "-o", notes, "--force")
    assert r.exit_code == 2 and "not lvtime encode output" in r.output
    assert notes.read_text() == "precious\n"
    r = run("encode", sim, "--series", 0, "-o", sim, "--force")  # its own input
    assert r.exit_code == 2 and data.load_dataset(sim).n_series == 3
    out = tmp_path / "enc.jsonl"
    assert run("encode", sim, "--all", "--jsonl", "-o", out).exit_code == 0
    assert run("encode", sim, "--series", 1, "--jsonl", "-o", out, "--force").exit_code == 0
    assert [json.loads(line)["series"] for line in out.read_text().splitlines()] == [1]


def test_ledger_export_never_overwrites_the_ledger_or_notes(tmp_path, notes):
    ledger = tmp_path / "ledger.json"
    assert run("ledger", "init", "--ledger", ledger).exit_code == 0
    before = ledger.read_bytes()
    r = run("ledger", "export", "--ledger", ledger, "-o", ledger, "--force")
    assert r.exit_code == 2 and ledger.read_bytes() == before
    r = run("ledger", "export", "--ledger", ledger, "-o", notes, "--force")
    assert r.exit_code == 2 and notes.read_text() == "precious\n"
    table = tmp_path / "flops.csv"
    assert run("ledger", "export", "--ledger", ledger, "--format", "csv", "-o", table).exit_code == 0
    assert run("ledger", "export", "--ledger", ledger, "--format", "md", "-o", table, "--force").exit_code == 0
    assert table.read_text().startswith("FLOP budget:")
    # without --format, the extension chooses: a .csv file gets CSV
    assert run("ledger", "export", "--ledger", ledger, "-o", table, "--force").exit_code == 0
    assert table.read_text().startswith("experiment,kind,status")


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "enc.txt"
    path.write_text("1,2;\n")

    def fail(tmp):
        tmp.write_text("half")
        raise OSError(28, "No space left on device")

    with pytest.raises(UsageError, match="nothing was replaced"):
        outfiles.atomic_write(path, fail)
    assert path.read_text() == "1,2;\n"
    assert [p.name for p in tmp_path.iterdir()] == ["enc.txt"]
