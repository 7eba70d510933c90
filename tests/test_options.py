"""Every option comes from a config field (issue 21 part 1): its flag, default, bounds,
choices and help; a field added in one place reaches every surface."""

import json
import sys

import pytest
import typer
from pydantic import Field
from typer.testing import CliRunner

from lvtime import config, layout
from lvtime.cli import make_app, options

runner = CliRunner()


def commands(group, prefix=()):
    """(path, click command) for every command of the app, sub-groups' callbacks included."""
    for name in group.list_commands(None):
        cmd = group.get_command(None, name)
        if hasattr(cmd, "commands"):
            yield (*prefix, name), cmd
            yield from commands(cmd, (*prefix, name))
        else:
            yield (*prefix, name), cmd


def test_every_option_of_every_command_is_read_from_its_field():
    app = typer.main.get_command(make_app())
    checked = 0
    for path, cmd in commands(app):
        sources = cmd.callback.lvtime_sources  # set by options.command: name -> field
        for param in cmd.params:
            if param.name == "help":
                continue
            assert param.name in sources, f"lvtime {' '.join(path)} {param.opts}: not from a config field"
            source = sources[param.name]
            info = source.info
            assert param.help.startswith(info.description), (path, param.name)
            if not options.is_argument(info):
                assert param.opts[0] == config.flag_of(param.name, info)[0].split("/")[0], (path, param.name)
            kind = options._strip_none(info.annotation)
            if source.listed or options.is_list(kind):
                assert param.default is None  # lists: the config's default applies
                continue
            if options.default_of(info) is ...:
                assert param.required, (path, param.name)
            else:
                assert param.default == options.default_of(info) or (param.default is None and info.default_factory)
            limits = {k: getattr(param, k) for k in ("min", "max") if getattr(param, k) is not None}
            assert limits == options.bounds(info), (path, param.name)
            assert param.type_descriptor.annotation == kind, (path, param.name)  # a Literal: the parser's choices
            checked += 1
    assert checked > 100


def test_no_option_is_written_by_hand_in_the_cli():
    from pathlib import Path

    import lvtime.cli

    for path in Path(lvtime.cli.__file__).parent.glob("*.py"):
        text = path.read_text()
        # the root's --version is the one option that is not a config's (it runs nothing)
        assert text.count("typer.Option(") == (1 if path.name == "__init__.py" else 0) + (
            1 if path.name == "options.py" else 0
        ), path.name
        assert "typer.Argument(" not in text or path.name == "options.py", path.name


@pytest.fixture
def extended(monkeypatch):
    """FinetuneConfig with one more field, everywhere lvtime looks it up."""

    class Extended(config.FinetuneConfig):
        new_knob: int = Field(3, ge=1, le=9, description="How hard to turn the new knob.")

    original = config.FinetuneConfig
    for module in list(sys.modules.values()):
        if module.__name__.startswith("lvtime") and getattr(module, "FinetuneConfig", None) is original:
            monkeypatch.setattr(module, "FinetuneConfig", Extended)
    return Extended


def test_a_new_finetune_option_added_in_one_place_appears_everywhere(extended, h5, tmp_path):
    app = make_app()
    tiny = ["--model", "tiny-qwen2", "--context", "32", "--batch-size", "2", "--val-series", "2"]
    for command in ("finetune", "sweep"):  # --help, with its words and its bounds
        text = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"}).stdout
        assert "--new-knob" in text and "How hard to turn the new knob." in text, command
        assert "1<=x<=9" in text, command
    r = runner.invoke(app, ["finetune", str(h5), *tiny, "--new-knob", "10", "--dry-run"])
    assert r.exit_code == 2  # the bound is the parser's
    r = runner.invoke(app, ["finetune", str(h5), *tiny, "--new-knob", "4", "--dry-run", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["config"]["new_knob"] == 4
    # config.json holds it, and a resumed run reads it back
    layout.write_config(tmp_path, extended(new_knob=5), {})
    assert layout.read_config(tmp_path).new_knob == 5
    # sweep files, --set and the sweep's flags; printed commands carry it
    assert config.SweepConfig(grid={"new_knob": [2, "2", 3]}).grid == {"new_knob": [2, 3]}
    with pytest.raises(ValueError, match="new_knob"):
        config.SweepConfig(grid={"new_knob": [0]})
    sweep = ["sweep", str(h5), *tiny, "--steps", "1", "--print-commands"]
    r = runner.invoke(app, [*sweep, "--new-knob", "2,4", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and "--new-knob 2" in lines[0] and "--new-knob 4" in lines[1]
    r = runner.invoke(app, [*sweep, "--rank", "2,4", "--set", "new-knob=7", "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert all("--new-knob 7" in line for line in r.stdout.splitlines())


def test_flags_take_no_value_and_show_none():
    app = make_app()
    for command in (["finetune"], ["sweep"], ["ledger", "init"], []):
        text = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "200"}).stdout
        assert "<bool>" not in text, command


def test_references_all_and_none_are_accepted(small_h5):
    app = make_app()
    from lvtime.reference_table import available

    for value, expected in (("all", len(available())), ("none", 0), ("ode,seasonal", 2)):
        r = runner.invoke(
            app,
            ["baseline", str(small_h5), "--model", "tiny-qwen2", "--history", "10", "--horizon", "10"]
            + ["--references", value, "--dry-run", "--json"],
        )
        assert r.exit_code == 0, r.output
        assert len(json.loads(r.stdout)["references"]) == expected, value
