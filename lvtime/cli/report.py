"""``lvtime report``: one page that shows a working directory's whole study."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from lvtime.cli import options
from lvtime.cli.output import console, print_json
from lvtime.config import ReportOptions


def register(app: typer.Typer) -> None:
    app.command("report", cls=options.Command)(options.command(ReportOptions)(report))


def report(given: options.Given) -> None:
    """Write one self-contained HTML page of a working directory: the budget and its
    ledger, every fine-tuning run, forecast and sweep, and forecast score against FLOPs.

    The page embeds its figures and asks the network for nothing, so it opens offline
    and can be mailed. It reads the folder (and its ledger: --ledger, else
    $LVTIME_LEDGER, else FOLDER/lvtime-ledger.json) and writes only --out. --json prints
    the same content as data.

    Example:\n
      lvtime report            # ./report.html\n
      lvtime report runs/.. -o study.html --open
    """
    from lvtime import outfiles, report_page
    from lvtime.errors import UsageError
    from lvtime.ledger import DEFAULT_PATH, Ledger
    from lvtime.report import collect

    o = given.build(ReportOptions)
    root = Path(o.folder)
    if not root.is_dir():
        raise UsageError(f"{root}: not a folder")
    ledger = Ledger(o.ledger or os.environ.get("LVTIME_LEDGER") or root / DEFAULT_PATH)
    target = root / "report.html" if o.out is None else o.out
    wanted = not o.as_json or o.out is not None  # --json alone prints, writes nothing
    out = outfiles.check(target, o.force, "report", ledger=ledger.path) if wanted else None
    doc = collect(root.resolve(), ledger)
    if o.as_json:
        print_json(doc)
    if out is not None:
        outfiles.write_text(out, report_page.render(doc, root))
        if not o.as_json:
            counts = {k: len(doc[k]) for k in ("runs", "forecasts", "sweeps")}
            counts["ledger entries"] = len(doc["budget"]["entries"])
            console.print(f"wrote {out}: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        if o.open:
            import webbrowser

            webbrowser.open(out.resolve().as_uri())
