"""The HTML page of ``lvtime report``: one self-contained file (inline CSS, inline SVG
charts, PNG figures embedded as data URIs, a few lines of inline script to sort tables),
so it opens offline and can be mailed or attached to a lab notebook. It asks the
network for nothing. Numbers use the CLI's notation (``4.22e15``, % of budget); every
numeric cell carries its exact value in ``data-value`` (what sorting, and tests, read).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lvtime import reference_table
from lvtime.config import option_names
from lvtime.flops import flops_str, pct

GENERATOR = "lvtime report"  # in a <meta>: how --force knows a page it may replace
MAX_IMAGE_BYTES = 2_000_000
NO_SCORE = (
    "no run has a forecast score yet: forecast an adapter (lvtime forecast --adapter RUN/final --out RUN/forecast)"
    " or sweep with --rank-by forecast"
)
NO_PLOTS = "no figures: install the plot extra (pip install 'lvtime[plot]')"
# a status's or a run state's colour class (an unknown one is a warning)
STATUS_CLASS = {"completed": "ok", "manual": "ok", "settled": "warn", "interrupted": "warn", "failed": "bad"}
STATUS_CLASS |= {"finished": "ok", "running": "run", "not started": ""}

CSS = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;
padding:1rem;color:#1d2330;background:#fff}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.2rem;margin:2rem 0 .6rem;border-bottom:2px solid #e4e8ef}
.meta,.note{color:#5b6577;font-size:.9rem}.note{background:#fff8e6;border-left:3px solid #e5a400;padding:.3rem .6rem}
.cards{display:flex;flex-wrap:wrap;gap:.6rem}
.card{flex:1 1 9rem;background:#f4f6fa;border-radius:8px;padding:.6rem .8rem}
.card b{display:block;font-size:1.35rem}.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;font-size:.88rem;min-width:100%}
th,td{padding:.3rem .5rem;border-bottom:1px solid #e4e8ef;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th{background:#f4f6fa;cursor:pointer;white-space:nowrap}td:first-child{white-space:nowrap}
th:first-child,td:first-child{position:sticky;left:0;
background:#fff;z-index:1}th:first-child{background:#f4f6fa}
.ok{color:#17803d}.warn{color:#b26b00}.bad{color:#c0262d}.run{color:#2456b3}
svg{max-width:100%;height:auto}figure{margin:.5rem 0;display:inline-block;max-width:100%}
figure img{max-width:100%;border:1px solid #e4e8ef}figcaption{font-size:.85rem;color:#5b6577}
a{color:#2456b3}
"""

SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function(th,i){th.addEventListener('click',function(){
var t=th.closest('table'),b=t.tBodies[0],rows=Array.from(b.rows),up=th.dataset.up!=='1';th.dataset.up=up?'1':'0';
function key(r){var c=r.cells[i],v=c.dataset.value;return v!==undefined&&v!==''&&!isNaN(+v)?+v:c.textContent.trim()}
rows.sort(function(a,b){var x=key(a),y=key(b);if(typeof x!==typeof y){x=String(x);y=String(y)}
return (x<y?-1:x>y?1:0)*(up?1:-1)});rows.forEach(function(r){b.appendChild(r)})})});
"""


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def cell(value: Any, text: str | None = None, cls: str = "n") -> str:
    """A numeric cell: the exact value in data-value, the readable one shown."""
    raw = "" if value is None else repr(value) if isinstance(value, float) else str(value)
    shown = text if text is not None else num(value)
    return f'<td class="{cls}" data-value="{esc(raw)}">{esc(shown)}</td>'


def text_cell(value: Any, cls: str = "") -> str:
    return f'<td class="{cls}">{esc("" if value is None else value)}</td>'


def svg_text(x: float, y: float, text: str, anchor: str = "middle", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{esc(text)}</text>'


def href(path: str) -> str:
    """A link to a file of the study: relative, ``./``-prefixed (a name like
    ``javascript:x`` stays a path) and percent-encoded (``#``, ``?``, ``%``, newlines)."""
    return "./" + quote(path.lstrip("/"), safe="/")


def link(path: str | None, label: str | None = None) -> str:
    return "-" if not path else f'<a href="{esc(href(path))}">{esc(label or path)}</a>'


# --- tables: each one a list of declared columns ------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a report table: its header, what it shows of a record, and how.

    ``fmt``: ``text``, ``status`` (text coloured by :data:`STATUS_CLASS`), ``num`` (3
    significant digits), ``loss`` (4), ``int``, ``flops``, ``pct`` (of the budget),
    ``seconds``, or ``html`` (``get`` returns markup it escaped itself). Every format but
    text, status and html is numeric: right-aligned, its exact value in ``data-value``.
    """

    header: str
    get: Callable[[dict], Any]
    fmt: str = "text"

    @property
    def numeric(self) -> bool:
        return self.fmt not in ("text", "status", "html")

    def cell(self, record: dict, total: float) -> str:
        v = self.get(record)
        if self.fmt == "text":
            return text_cell(v)
        if self.fmt == "status":
            return text_cell(v, STATUS_CLASS.get(v, "warn"))
        if self.fmt == "html":
            return f"<td>{v}</td>"
        shown = {
            "loss": lambda: num(v, 4),
            "int": lambda: "-" if v is None else str(v),
            "flops": lambda: "-" if v is None else flops_str(v),
            "pct": lambda: pct(v, total),
            "seconds": lambda: "-" if v is None else f"{v:.0f}s",
        }.get(self.fmt, lambda: num(v))()
        return cell(None if v is None else 100 * v / total if self.fmt == "pct" else v, shown)


def value_of(name: str) -> Callable[[dict], Any]:
    return lambda r: r.get(name)


def table(columns: list[Column], records: list[dict], total: float = 1.0, attrs: str = "", row_id=None) -> str:
    """A sortable table of ``records``; ``row_id`` = (attribute, record -> value) marks each row."""
    head = "".join(f'<th class="{"n" if c.numeric else ""}">{esc(c.header)}</th>' for c in columns)
    rows = []
    for r in records:
        mark = f' {row_id[0]}="{esc(row_id[1](r))}"' if row_id else ""
        rows.append(f"<tr{mark}>" + "".join(c.cell(r, total) for c in columns) + "</tr>")
    body = "\n".join(rows) if rows else f'<tr><td colspan="{len(columns)}" class="meta">none</td></tr>'
    inner = f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
    return f'<div class="scroll"><table class="sortable" {attrs}>{inner}</table></div>'


def image(root: Path, rel: str | None, caption: str) -> str:
    """A PNG of the working directory embedded as a data URI (the page stays one file)."""
    if not rel:
        return ""
    from lvtime.errors import RunFolderError
    from lvtime.layout import read_bytes

    try:
        data = read_bytes(root / rel, MAX_IMAGE_BYTES)  # a FIFO or a link to /dev/zero is a note, not a hang
    except RunFolderError as exc:
        return _notes([str(exc)])
    if not data.startswith(b"\x89PNG"):
        return f"<p>{link(rel, caption)}</p>"
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    return f'<figure><img src="{uri}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'


# --- charts (inline SVG: no plot extra needed) ------------------------------------------------


class _Frame:
    """Plot area of a chart and the mapping from data to SVG coordinates."""

    W, H, LEFT, RIGHT, TOP, BOTTOM = 640, 300, 84, 20, 16, 46

    def __init__(self, xs: list[float], ys: list[float], xlog: bool, yflops: bool = False):
        self.fx = math.log10 if xlog else (lambda v: v)
        x0, x1 = min(map(self.fx, xs)), max(map(self.fx, xs))
        self.x0, self.x1 = (x0 - 0.5, x1 + 0.5) if x1 - x0 < 1e-9 else (x0, x1)
        self.y0, self.y1 = min(ys + [0.0]), (max(ys) * 1.08) or 1.0
        self.xlog, self.yflops = xlog, yflops

    def px(self, x: float) -> float:  # x in data units
        return self.sx(self.fx(x))

    def sx(self, v: float) -> float:  # x already on the axis scale (log10 when xlog)
        return self.LEFT + (v - self.x0) / (self.x1 - self.x0) * (self.W - self.LEFT - self.RIGHT)

    def py(self, y: float) -> float:
        return self.TOP + (1 - (y - self.y0) / (self.y1 - self.y0)) * (self.H - self.TOP - self.BOTTOM)

    def axes(self, xlabel: str, ylabel: str) -> list[str]:
        w, h = self.W - self.LEFT - self.RIGHT, self.H - self.TOP - self.BOTTOM
        out = [f'<rect x="{self.LEFT}" y="{self.TOP}" width="{w}" height="{h}" fill="#fafbfd" stroke="#d5dbe5"/>']
        for k in range(5):
            y = self.y0 + (self.y1 - self.y0) * k / 4
            out.append(svg_text(self.LEFT - 6, self.py(y) + 4, flops_str(y) if self.yflops else num(y), "end"))
            v = self.x0 + (self.x1 - self.x0) * k / 4
            out.append(svg_text(self.sx(v), self.H - self.BOTTOM + 16, flops_str(10**v) if self.xlog else num(v)))
        middle = self.TOP + h / 2
        out.append(svg_text(self.LEFT + w / 2, self.H - 8, xlabel))
        out.append(svg_text(14, middle, ylabel, extra=f'transform="rotate(-90 14 {middle:.1f})"'))
        return out

    def hline(self, y: float, label: str, dash: str, left: bool = False) -> list[str]:
        """A reference line; ``left`` puts its label at the left end (lines close together)."""
        at = self.py(y)
        line = f'<line x1="{self.LEFT}" x2="{self.W - self.RIGHT}" y1="{at:.1f}" y2="{at:.1f}" stroke="#7a8499"'
        x, anchor = (self.LEFT + 4, "start") if left else (self.W - self.RIGHT - 4, "end")
        return [line + f' stroke-dasharray="{dash}"/>', svg_text(x, at - 4, label, anchor, 'fill="#5b6577"')]


def chart(series: list[dict], hlines: list[tuple], xlabel: str, ylabel: str, xlog: bool, yflops: bool = False) -> str:
    """A chart of ``series`` ({"points": [(x, y)], "label", "color", "line": bool}) with
    horizontal reference lines ``hlines`` ((y, label, dash pattern)); log x with ``xlog``,
    FLOP notation on the y axis with ``yflops``."""

    def shown(x, y) -> bool:
        return x is not None and y is not None and (x > 0 or not xlog)

    points = [(x, y) for s in series for x, y in s["points"] if shown(x, y)]
    if not points:
        return '<p class="meta">nothing to plot yet</p>'
    frame = _Frame([x for x, _ in points], [y for _, y in points] + [y for y, _, _ in hlines], xlog, yflops)
    out = [f'<svg viewBox="0 0 {frame.W} {frame.H}" role="img" font-size="11">', *frame.axes(xlabel, ylabel)]
    for k, (y, label, dash) in enumerate(sorted(hlines)):
        out += frame.hline(y, label, dash, left=k % 2 == 1)
    for s in series:
        xy = [(frame.px(x), frame.py(y)) for x, y in s["points"] if shown(x, y)]
        if s.get("line") and len(xy) > 1:
            path = " ".join(f"{a:.1f},{b:.1f}" for a, b in xy)
            out.append(f'<polyline points="{path}" fill="none" stroke="{s["color"]}" stroke-width="2"/>')
        title = f"<title>{esc(s['label'])}</title>"
        out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3.5" fill="{s["color"]}">{title}</circle>' for a, b in xy]
    legend = "".join(f'<tspan fill="{s["color"]}">\u25cf {esc(s["label"])}   </tspan>' for s in series if s["points"])
    out.append(f'<text x="{frame.LEFT + 6}" y="{frame.TOP + 14}">{legend}</text></svg>')
    return "\n".join(out)


def _seconds(stamp: str) -> float | None:
    try:
        return datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return None


# --- sections ---------------------------------------------------------------------------------


def render(doc: dict, root: Path) -> str:
    """The whole page."""
    b = doc["budget"]
    sections = [
        _budget(b),
        _runs(doc["runs"], b["budget"]),
        _forecasts(doc["forecasts"], doc["runs"], root),
        _frontier(doc["frontier"], b["budget"]),
        _sweeps(doc["sweeps"], root, b["budget"]),
    ]
    title = f"lvtime study: {esc(Path(doc['root']).name or doc['root'])}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="{GENERATOR} {esc(doc["lvtime"])}">
<title>{title}</title><style>{CSS}</style></head>
<body><h1>{title}</h1>
<p class="meta">{esc(doc["root"])} · generated {esc(doc["generated_at"])} by lvtime {esc(doc["lvtime"])}</p>
{"".join(sections)}
<script>{SORT_SCRIPT}</script></body></html>
"""


def _notes(notes: list[str]) -> str:
    return "".join(f'<p class="note">{esc(n)}</p>' for n in notes)


def _budget(b: dict) -> str:
    total = b["budget"]
    cards = [f'<div class="card">budget<b>{flops_str(total)}</b>{len(b["entries"])} ledger entries</div>']
    for key in ("spent", "reserved", "remaining"):
        cards.append(f'<div class="card">{key}<b>{flops_str(b[key])}</b>{pct(b[key], total)} of budget</div>')
    missing = "" if b["exists"] else _notes([f"no ledger at {b['path']} yet: no run has spent anything here"])
    kinds = [{"kind": k, "flops": v} for k, v in b["by_kind"].items()]
    return (
        f"<h2>Budget</h2><div class=cards>{''.join(cards)}</div>{missing}"
        f"<h3>Spend over time</h3>{_spend_chart(b)}"
        f"<h3>By kind</h3>{table(KIND_COLUMNS, kinds, total, 'id=by-kind')}"
        f"<h3>Ledger entries</h3>"
        + table(ENTRY_COLUMNS, b["entries"], total, "id=entries", ("data-id", value_of("id")))
    )


KIND_COLUMNS = [
    Column("kind", value_of("kind")),
    Column("FLOPs", value_of("flops"), "flops"),
    Column("% budget", value_of("flops"), "pct"),
]
ENTRY_COLUMNS = [
    Column("id", value_of("id")),
    Column("label", value_of("label")),
    Column("kind", value_of("kind")),
    Column("status", lambda e: "stale" if e["stale"] else e["status"], "status"),
    Column("estimate", value_of("estimated_flops"), "flops"),
    Column("spent", value_of("spent_flops"), "flops"),
    Column("counted", value_of("counted"), "flops"),
    Column("% budget", value_of("counted"), "pct"),
    Column("ended", lambda e: (e.get("ended_at") or e["started_at"])[:19].replace("T", " ")),
]


def _spend_chart(b: dict) -> str:
    """Cumulative FLOPs against hours since the first entry; the budget line once in view."""
    points = [(_seconds(t["at"]), t["cumulative"]) for t in b["timeline"]]
    start = min((x for x, _ in points if x is not None), default=0.0)
    hours = [((x - start) / 3600 if x is not None else None, y) for x, y in points]
    near = b["spent"] + b["reserved"] > b["budget"] / 20  # else the line would squash the curve flat
    budget_line = [(b["budget"], f"budget {flops_str(b['budget'])}", "6 4")] if near else []
    series = [{"points": hours, "label": "cumulative FLOPs", "color": "#2456b3", "line": True}]
    return chart(series, budget_line, "hours since the first entry", "FLOPs", xlog=False, yflops=True)


RUN_COLUMNS = [
    Column("run", lambda r: link(r["path"], r["name"]), "html"),
    Column("state", value_of("state"), "status"),
    Column("options (not default)", value_of("options")),
    Column("steps", value_of("steps"), "int"),
    Column("FLOPs", value_of("flops"), "flops"),
    Column("% budget", value_of("flops"), "pct"),
    Column("val loss @0", value_of("val_loss_before"), "loss"),
    Column("val loss", value_of("val_loss_after"), "loss"),
    Column("best MASE", value_of("best_score"), "num"),
    Column("wall", value_of("wall_s"), "seconds"),
    Column("plots", lambda r: link(r["loss_plot"], "loss.png"), "html"),
    Column("notes", lambda r: _notes(r["notes"]), "html"),
]


def _runs(runs: list[dict], total: float) -> str:
    return "<h2>Fine-tuning runs</h2>" + table(RUN_COLUMNS, runs, total, "id=runs", ("data-run", value_of("path")))


FORECAST_COLUMNS = [
    Column("forecast", lambda f: link(f["path"]), "html"),
    Column("kind", value_of("kind")),
    Column("adapter / model", lambda f: f.get("adapter_run") or f.get("model") or "-"),
    Column("series", value_of("n_series"), "int"),
    Column("MASE", value_of("score"), "num"),
    Column("best reference", lambda f: reference_table.label(f.get("best_reference") or "-")),
    Column("its MASE", value_of("best_reference_score"), "num"),
    Column(reference_table.label(reference_table.LIMIT), value_of("ode_limit"), "num"),
    Column("FLOPs", value_of("flops"), "flops"),
    Column("notes", lambda f: _notes(f["notes"]), "html"),
]


def _forecasts(forecasts: list[dict], runs: list[dict], root: Path) -> str:
    out = "<h2>Forecasts</h2><p class=meta>MASE: median over series, mean of prey and predator; lower is better.</p>"
    out += table(FORECAST_COLUMNS, forecasts, attrs="id=forecasts", row_id=("data-run", value_of("path")))
    scored = [f for f in forecasts if f.get("score") is not None]
    if scored:
        best = min(scored, key=lambda f: f["score"])
        out += f"<h3>Best forecast: {esc(best['path'])}</h3>" + _species_table(best)
        pictured = min((f for f in scored if f["plots"]), key=lambda f: f["score"], default=None)
        if pictured is None:
            out += _notes([NO_PLOTS + " and forecast with --out"])
        else:  # a sweep's ranking forecasts draw no figures: show the best that did
            out += "".join(image(root, p, f"{pictured['path']}: {Path(p).stem}") for p in pictured["plots"])
    return out


SPECIES_COLUMNS = [
    Column("forecaster", lambda r: reference_table.label(r["name"])),
    Column("species", value_of("species")),
]
METRIC_HEADERS = {"mae": "MAE", "r2": "R²", "mase": "MASE", "crps": "CRPS", "coverage": "coverage"}
SAMPLE_METRICS = ("crps", "coverage")  # shown when the forecast was sampled


def _species_table(f: dict) -> str:
    sampled = any("crps" in m.get("prey", {}) for m in f["metrics"].values())
    shown = [m for m in METRIC_HEADERS if sampled or m not in SAMPLE_METRICS]
    columns = SPECIES_COLUMNS + [Column(METRIC_HEADERS[m], lambda r, m=m: r["values"].get(m), "num") for m in shown]
    records = [
        {"name": name, "species": sp, "values": per[sp]}
        for name, per in f["metrics"].items()
        for sp in ("prey", "predator")
    ]
    return table(columns, records, attrs="id=best-forecast")


_LIMIT = reference_table.BY_NAME[reference_table.LIMIT]
REFERENCE_LINES = (("zero_shot", "zero-shot", "2 3"), ("best_reference", "best naive reference", "6 4"))
REFERENCE_LINES += (("ode_limit", _LIMIT.label, _LIMIT.dash),)


def _frontier(fr: dict, total: float) -> str:
    def xy(points: list[dict]) -> list[tuple]:
        return [(p["flops"], p["score"]) for p in points]

    steps = []  # best so far: flat until the next run that improves on it
    for p in fr["best_so_far"]:
        steps += [(p["flops"], steps[-1][1])] if steps else []
        steps.append((p["flops"], p["score"]))
    series = [
        {"points": xy(fr.get("in_training", [])), "label": "in-training forecasts", "color": "#e0a34a"},
        {"points": xy(fr["points"]), "label": "runs", "color": "#8da4d4"},
        {"points": steps, "label": "best so far", "color": "#2456b3", "line": True},
    ]
    hlines = [(fr[key], label, dash) for key, label, dash in REFERENCE_LINES if fr[key] is not None]
    body = chart(series, hlines, f"training FLOPs (the study's budget: {flops_str(total)})", "forecast MASE", True)
    if not fr["points"]:
        body = _notes([NO_SCORE])
    return "<h2>The frontier: forecast score against training FLOPs</h2>" + body


def _sweeps(sweeps: list[dict], root: Path, total: float) -> str:
    out = "<h2>Sweeps</h2>" + ("" if sweeps else '<p class="meta">none</p>')
    for s in sweeps:
        keys = option_names(s["grid"])  # a joint search key ("context+batch_size") is two columns
        by = "forecast_mase" if s["rank_by"] == "forecast" else "val_loss"
        columns = [SWEEP_RUN, *(Column(k, value_of(k)) for k in keys), Column(by, value_of(by), "num"), *SWEEP_COST]
        kind = f"{s['search']} search, " if s.get("search", "grid") != "grid" else ""
        out += f"<h3>{link(s['path'])} ({kind}ranked by {esc(s['rank_by'])})</h3>{_notes(s['notes'])}"
        out += table(columns, s["results"], total, row_id=("data-run", lambda r: r.get("out", "")))
        out += "".join(image(root, p, f"{s['path']}: {name}") for name, p in s["figures"].items())
        if not s["figures"] and s["results"]:
            out += _notes([NO_PLOTS + " and re-run the sweep"])
    return out


# a sweep's table: the run, its swept options, its ranking value, then these
SWEEP_RUN = Column("run", lambda r: f"{r.get('run')} (pruned)" if r.get("pruned") else r.get("run"))
SWEEP_COST = [Column("FLOPs", value_of("flops"), "flops"), Column("% budget", value_of("flops"), "pct")]
