"""Every option of every command, once: pydantic models the CLI is generated from and
the core takes.

A field is an option: its name is the flag (``lora_dropout`` -> ``--lora-dropout``)
unless ``cli(...)`` names other flags, and its default, bounds, choices and description
are the option's default, range, choices and ``--help`` text. ``lvtime.cli.options``
turns the models into command signatures; ``lvtime.sweep`` turns the same
:class:`FinetuneConfig` fields into sweep keys, ``--set`` names and printed commands.
Adding an option is adding a field here.

The bottom layer: imports no other lvtime module but the version and the reference table
(itself free of imports). A run folder holds its resolved config as JSON, with library
versions and the git commit when known (:func:`provenance`). No torch import here.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from lvtime import __version__, reference_table

DEFAULT_DATA_FILE = "lotka_volterra_data.h5"
DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"  # the study's model
DEFAULT_TARGETS = ("q_proj", "v_proj")  # the study adapts the query and value projections
REFERENCES = reference_table.NAMES
CONVENTIONS = ("coursework", "exact", "2mnk")

# Unknown option names are refused (a typo must not silently run the default), and so
# are NaN and infinities (``--lr inf`` would train to non-finite weights).
STRICT = ConfigDict(
    extra="forbid", allow_inf_nan=False, defer_build=True
)  # validators built on first use: start-up time


def cli(*flags: str, argument: bool = False, metavar: str | None = None, whole: bool = False) -> dict[str, Any]:
    """How a field appears on the command line, when not as ``--field-name``: its flags
    (aliases included), a positional ``argument``, and for a list field ``whole`` values
    (repeated, never split at commas)."""
    extra: dict[str, Any] = {"cli_flags": list(flags)} if flags else {}
    if argument:
        extra["cli_argument"] = True
    if metavar:
        extra["cli_metavar"] = metavar
    if whole:
        extra["cli_whole"] = True
    return extra


def flag_of(name: str, info: Any) -> list[str]:
    """A field's flags (its ``cli(...)`` ones, else ``--field-name``): what the CLI
    accepts and what printed commands use (the first)."""
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return list(extra.get("cli_flags") or ["--" + name.replace("_", "-")])


def is_argument(info: Any) -> bool:
    return isinstance(info.json_schema_extra, dict) and bool(info.json_schema_extra.get("cli_argument"))


def command_args(cfg: BaseModel, skip: tuple[str, ...] = ()) -> list[str]:
    """Arguments that make the command generated from ``type(cfg)`` reproduce ``cfg``:
    positional fields, then every option that differs from its default (floats at full
    precision). A relative path that starts with ``-`` gets ``./`` so it is never read
    as a flag."""
    defaults = type(cfg).model_fields
    args: list[str] = []
    for name, info in defaults.items():
        value = getattr(cfg, name)
        if name in skip or (not is_argument(info) and value == info.get_default(call_default_factory=True)):
            continue
        if isinstance(value, list | tuple):
            text = ",".join(map(str, value))
        else:
            text = repr(value) if isinstance(value, float) else str(value)
        if is_argument(info):
            args.insert(0, "./" + text if text.startswith("-") else text)
        elif isinstance(value, bool):
            args.append(flag_of(name, info)[0].split("/")[0 if value else 1])
        else:
            args += [flag_of(name, info)[0], text]
    return args


def _named(value: str) -> str:
    if not value.strip():
        raise ValueError("empty; name a hub id, a folder, a .gguf file or a preset")
    return value


def _references(value: Any) -> Any:
    """``all`` (every reference installed) and ``none`` as the CLI accepts them, in a list or alone."""
    items = [value] if isinstance(value, str) else value
    if isinstance(items, list | tuple) and len(items) == 1 and items[0] in ("all", "none"):
        return reference_table.available() if items[0] == "all" else []
    return value


def _installed(names: list[str]) -> list[str]:
    for name in names:
        reference_table.require(name)  # one line naming the extra, before anything is spent
    return names


# --- shared fields: one definition for every model that has the option ---------------

Data = Annotated[str, Field(description="HDF5 dataset.", json_schema_extra=cli(argument=True))]
ModelName = Annotated[
    str, AfterValidator(_named), Field(description="Base model: Hub id, folder, .gguf file or preset.")
]
Decimals = Annotated[int, Field(ge=0, le=8, description="LLMTIME digits after the decimal point.")]
Device = Annotated[
    str, Field(pattern=r"^(auto|cpu|mps|cuda(:[0-9]+)?)$", description="auto, cpu, cuda, cuda:N or mps.")
]
Dtype = Annotated[
    Literal["auto", "float32", "bfloat16", "float16"], Field(description="auto: bf16 on capable GPUs, else fp32.")
]
Seed = Annotated[int, Field(description="Seed of every random choice (recorded in the run's config).")]
Convention = Annotated[Literal["coursework", "exact", "2mnk"], Field(description="FLOP counting convention.")]
History = Annotated[int, Field(ge=1, description="Time steps a forecast prompt holds.")]
Head = Annotated[Literal["full", "numeric"], Field(description="numeric: output layer restricted to LLMTIME tokens.")]
Rank = Annotated[int, Field(ge=1, description="LoRA rank.")]
AlphaMode = Annotated[
    Literal["per-series", "global"],
    Field(description="Scale each series by its own alpha, or all by one alpha from the training split."),
]
Scale = Annotated[
    Literal["series", "species"],
    Field(
        description="One alpha for both species of a series (series), or one per species (species: the "
        "predator, ~0.4x the prey, keeps its significant digits)."
    ),
]
Alphas = Annotated[
    list[Annotated[float, Field(gt=0)]],
    Field(min_length=1, max_length=2),
]
Targets = Annotated[list[str], Field(description="Modules to adapt, comma-separated.", min_length=1)]
Context = Annotated[int, Field(ge=8, description="Tokens per window.", json_schema_extra=cli("--context", "--seq"))]
Steps = Annotated[int, Field(ge=0, description="Optimizer steps.")]
TrainBatch = Annotated[
    int, Field(ge=1, description="Windows per optimizer step.", json_schema_extra=cli("--batch-size", "--batch"))
]


class FinetuneConfig(BaseModel):
    """Everything that determines a fine-tuning run (recorded in its ``config.json``)."""

    model_config = STRICT

    data: Data = DEFAULT_DATA_FILE
    model: ModelName = DEFAULT_MODEL
    out: str = Field(
        default_factory=lambda: time.strftime("runs/finetune-%Y%m%d-%H%M%S"),
        description="Run folder (default: runs/finetune-DATE-TIME).",
        json_schema_extra=cli("--out", "-o"),
    )
    # LoRA
    rank: Rank = 4
    lora_alpha: float | None = Field(None, gt=0, description="LoRA alpha (default: the rank, i.e. scale 1).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    targets: Targets = Field(default_factory=lambda: list(DEFAULT_TARGETS))
    # Optimisation
    lr: float = Field(1e-5, gt=0, description="Peak learning rate (AdamW).")
    steps: Steps = 100
    batch_size: TrainBatch = 4
    grad_accum: int = Field(1, ge=1, description="Micro-batches per step (each batch-size / grad-accum windows).")
    context: Context = 512
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    schedule: Literal["constant", "cosine"] = Field("constant", description="Learning rate after warmup.")
    warmup: int = Field(0, ge=0, description="Linear warmup steps.")
    clip_grad: float = Field(1.0, ge=0, description="Max gradient norm (0: off).")
    seed: Seed = 0
    # Data
    decimals: Decimals = 2
    alpha_mode: AlphaMode = "per-series"
    alpha_from: Literal["series", "history"] = Field(
        "series",
        description="Per-series alpha from all steps (series) or, like a forecast prompt, from the first "
        "--history steps (history).",
    )
    scale: Scale = "series"
    history: History = 50
    window_starts: Literal["tokens", "steps"] = Field(
        "tokens",
        description="Training windows start every context/2 tokens (tokens) or at the nearest time-step "
        "boundary, one at each series' start (steps), as forecast prompts do.",
    )
    loss_on: Literal["all", "horizon"] = Field(
        "all",
        description="Tokens trained on: all, or (horizon) only those after each window's first --history steps, "
        "as a forecast continues its prompt (needs --window-starts steps).",
    )
    extra_train: str | None = Field(
        None,
        description="More training series: every series of this HDF5 file joins the training split (e.g. made "
        "with lvtime simulate --like DATA).",
        json_schema_extra=cli(metavar="FILE", whole=True),
    )
    split_scheme: Literal["ordered", "random"] = Field(
        "ordered", description="ordered (0-69%/70-89%/90-100%) or random."
    )
    train_series: int | None = Field(None, ge=1, description="Use only the first N training series.")
    val_series: int | None = Field(None, ge=1, description="Use only the first N validation series.")
    # Evaluation and output
    eval_every: int = Field(0, ge=0, description="Validate every N steps (0: only at 0 and the end).")
    forecast_every: int = Field(
        0,
        ge=0,
        description="Forecast the first --forecast-series validation series at step 0, every N steps and at "
        "the end, log their scores and keep the best adapter in best/ (0: off). Charged to the run.",
    )
    forecast_series: int = Field(20, ge=1, description="Validation series forecast per evaluation.")
    forecast_samples: int = Field(1, ge=1, description="Samples per series in an evaluation (1: greedy).")
    forecast_batch: int = Field(
        64, ge=1, description="Sequences decoded together in an evaluation (64: 40 series in one decode)."
    )
    early_stop: int = Field(
        0, ge=0, description="End the run after P forecast evaluations without a better score (0: never)."
    )
    save_every: int = Field(0, ge=0, description="Checkpoint every N steps (0: at each validation).")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept (the newest).")
    head: Head = "full"
    device: Device = "auto"
    dtype: Dtype = "auto"
    compile: bool = Field(
        False,
        description="torch.compile the model body: faster on GPUs; on a CPU it needs a C++ compiler "
        "and was 8% slower at the recipe's shape (docs/benchmarks.md).",
    )
    convention: Convention = "coursework"

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, values: Any) -> Any:
        """Run folders from before the rename (``warmup_steps``) still resume."""
        if isinstance(values, dict) and "warmup_steps" in values and "warmup" not in values:
            values = {**values, "warmup": values["warmup_steps"]}
            del values["warmup_steps"]
        return values

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.batch_size % self.grad_accum:
            raise ValueError("batch_size must be a multiple of grad_accum")
        if self.loss_on == "horizon" and self.window_starts != "steps":
            raise ValueError("--loss-on horizon needs --window-starts steps (windows that begin like a prompt)")
        return self

    @property
    def micro_batch(self) -> int:
        return self.batch_size // self.grad_accum

    @property
    def eval_steps(self) -> list[int]:
        """Steps after which validation runs: 0, every eval_every, and the last."""
        every = self.eval_every or self.steps or 1
        return sorted({0, self.steps, *range(every, self.steps, every)})

    @property
    def forecast_steps(self) -> list[int]:
        """Steps after which the validation series are forecast (none when off)."""
        every = self.forecast_every
        return sorted({0, self.steps, *range(every, self.steps, every)}) if every else []


class ForecastConfig(BaseModel):
    """Everything that determines a ``baseline`` or ``forecast`` run."""

    model_config = STRICT

    data: Data = DEFAULT_DATA_FILE
    model: ModelName | None = Field(
        None,
        description=f"Base model: Hub id, folder, .gguf file or preset (default: the adapter's, else {DEFAULT_MODEL}).",
    )
    adapter: str | None = Field(
        None, description="LoRA adapter folder, e.g. runs/NAME/final.", json_schema_extra=cli("--adapter", "-a")
    )
    series: list[int] = Field(
        default_factory=list,
        description="Series indices, comma-separated or repeated (none: use --split).",
        json_schema_extra=cli("--series", "-s"),
    )
    split: Literal["train", "val", "test"] = Field("test", description="Split to forecast when no --series.")
    limit: int | None = Field(None, ge=1, description="Only the first N selected series.")
    history: History = 50
    horizon: int = Field(50, ge=1, description="Steps to forecast.")
    decimals: Decimals = 2
    scale: Scale | None = Field(
        None,
        description="One alpha per series or per species (default: the scale the adapter was trained with; series "
        "for a baseline).",
    )
    int_digits: int = Field(2, ge=1, le=6, description="Max digits before the point (scaled values).")
    batch_size: int = Field(64, ge=1, description="Sequences decoded together (memory grows with it).")
    num_samples: int = Field(1, ge=1, description="Samples per series (median + 10-90% band).")
    temperature: float = Field(0.0, ge=0, description="0: greedy; > 0: sampling.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold.")
    seed: Seed = 0
    device: Device = "auto"
    dtype: Dtype = "auto"
    convention: Convention = "coursework"
    out: str | None = Field(
        None,
        description="Folder for metrics.json, per_series.csv, forecasts.npz and figures.",
        json_schema_extra=cli("--out", "-o"),
    )
    plot_series: int = Field(4, ge=0, description="Figures for this many series (plot extra).")
    references: Annotated[list[Literal[REFERENCES]], BeforeValidator(_references), AfterValidator(_installed)] = Field(
        default_factory=reference_table.available,
        description="Reference forecasts scored beside the model, comma-separated, all or none (default: every "
        "one installed; arima needs the arima extra; ode fits the predator-prey equations to each history: the "
        "physical limit).",
    )

    @model_validator(mode="after")
    def _check(self) -> ForecastConfig:
        if self.num_samples > 1 and self.temperature <= 0:  # before any model is loaded or FLOP reserved
            raise ValueError("--num-samples > 1 needs --temperature > 0 (greedy samples are identical)")
        return self


# --- flags of commands (not part of a run's config) ----------------------------------


class JsonFlag(BaseModel):
    model_config = STRICT
    as_json: bool = Field(False, description="Print JSON on stdout, for scripts.", json_schema_extra=cli("--json"))


class LedgerFlag(BaseModel):
    model_config = STRICT
    ledger: str | None = Field(None, description="Ledger file (default: $LVTIME_LEDGER or ./lvtime-ledger.json).")


class ForceFlag(BaseModel):
    model_config = STRICT
    force: bool = Field(False, description="Replace an existing output that lvtime made for this command.")


class SpendFlags(JsonFlag, LedgerFlag):
    """What every command that spends FLOPs takes besides its config."""

    dry_run: bool = Field(False, description="Print the plan and its cost; load no weights, spend nothing.")
    allow_over_budget: bool = Field(False, description="Run even if the budget does not cover it.")
    quiet: bool = Field(False, description="No progress bar.", json_schema_extra=cli("--quiet", "-q"))


class RunFlags(SpendFlags, ForceFlag):
    """A single run's: finetune, baseline, forecast."""

    label: str | None = Field(None, description="Ledger label (default: made from the run).")


class FinetuneFlags(RunFlags):
    resume: str | None = Field(
        None, description="Continue the run in this folder from its newest checkpoint (options given extend it)."
    )


class EncodeOptions(JsonFlag, ForceFlag):
    data: str | None = Field(
        None, description=f"HDF5 dataset (default: ./{DEFAULT_DATA_FILE}).", json_schema_extra=cli(argument=True)
    )
    series: list[int] = Field(
        default_factory=list,
        description="Series indices, comma-separated or repeated.",
        json_schema_extra=cli("--series", "-s"),
    )
    split: Literal["train", "val", "test"] | None = Field(None, description="Encode a whole split.")
    all_series: bool = Field(False, description="Encode every series.", json_schema_extra=cli("--all"))
    prey: list[float] = Field(default_factory=list, description="Inline prey values, comma-separated.")
    predator: list[float] = Field(default_factory=list, description="Inline predator values, comma-separated.")
    steps: int | None = Field(None, ge=1, description="Encode only the first N time steps.")
    decimals: Decimals = 2
    alpha: Alphas | None = Field(
        None, description="Use this scale instead of computing one: one value, or prey,predator (with --scale species)."
    )
    alpha_mode: AlphaMode = "per-series"
    scale: Scale = "series"
    tokens: bool = Field(False, description="Also print Qwen2.5 token ids.")
    jsonl: bool = Field(False, description="One JSON object per series per line.")
    out: str | None = Field(
        None, description="Write to this file instead of stdout.", json_schema_extra=cli("--out", "-o")
    )


class DecodeOptions(JsonFlag):
    text: str = Field(..., description="LLMTIME text, or - to read stdin.", json_schema_extra=cli(argument=True))
    alpha: Alphas = Field(
        default_factory=lambda: [1.0],
        description="Scale the text was encoded with: one value, or prey,predator (text of --scale species).",
    )
    decimals: Decimals = 2


class SimulateOptions(JsonFlag, ForceFlag):
    out: str = Field(..., description="HDF5 file to write.", json_schema_extra=cli(argument=True))
    n: int = Field(1000, ge=1, description="Number of series.")
    points: int = Field(100, ge=2, description="Time steps per series.")
    t_max: float = Field(200.0, gt=0, description="Time span: steps are linspace(0, t_max, points).")
    seed: Seed = 0
    dynamics: Literal["rosenzweig-macarthur", "lotka-volterra", "mixed"] = Field(
        "rosenzweig-macarthur", description="rosenzweig-macarthur is the study's (docs/data.md)."
    )
    ranges: Literal["study", "fast"] = Field(
        "study", description="Parameter ranges: study (the study's own, docs/data.md) or fast (periods ~8 steps)."
    )
    like: str | None = Field(
        None,
        description="Draw series like this dataset's: fit the study's equations to each of its series and "
        "sample the fitted parameters (its time grid; not with --points, --t-max, --dynamics, --ranges).",
        json_schema_extra=cli(metavar="FILE"),
    )
    like_split: Literal["train", "val", "test"] | None = Field(
        None,
        description="Fit only this split of the --like file (default ordered split), e.g. train, so that new "
        "training series carry nothing of the validation or test series.",
    )


class StatsOptions(JsonFlag):
    files: list[str] = Field(
        default_factory=list, description="HDF5 datasets.", json_schema_extra=cli(argument=True, whole=True)
    )


class FlopsOptions(JsonFlag, LedgerFlag):
    context: Context = 512
    batch_size: TrainBatch = 4
    steps: int = Field(1, ge=0, description="Optimizer steps (train) or passes (forward).")
    rank: int = Field(4, ge=0, description="LoRA rank (0: no LoRA).")
    targets: Targets = Field(default_factory=lambda: list(DEFAULT_TARGETS))
    mode: Literal["forward", "train", "generate"] = Field(
        "train", description="What to cost (generate: --context is the prompt)."
    )
    new_tokens: int = Field(0, ge=0, description="Tokens to generate (generate mode).")
    convention: Convention = "coursework"
    model: ModelName = DEFAULT_MODEL
    head: Head = "full"
    breakdown: bool = Field(
        True, description="Per-component table.", json_schema_extra=cli("--breakdown/--no-breakdown")
    )


class LedgerInitOptions(JsonFlag, LedgerFlag, ForceFlag):
    budget: float = Field(1e17, gt=0, description="Total FLOP budget.")


class LedgerAddOptions(JsonFlag, LedgerFlag):
    flops: float = Field(..., ge=0, description="FLOPs spent, e.g. 4.22e15.")
    label: str = Field(..., description="What the work was.")
    steps: int | None = Field(None, ge=0, description="Training steps, shown in reports.")


class LedgerSettleOptions(JsonFlag, LedgerFlag, ForceFlag):
    entry_id: str = Field(
        ..., description="Id of the running entry (see `lvtime ledger`).", json_schema_extra=cli(argument=True)
    )
    spent: float | None = Field(None, ge=0, description="FLOPs really spent (default: the reservation).")


class LedgerExportOptions(LedgerFlag, ForceFlag):
    format: Literal["md", "csv"] | None = Field(
        None, description="Table format (default: from --out's extension, else md)."
    )
    out: str | None = Field(
        None, description="Write to this file instead of stdout.", json_schema_extra=cli("--out", "-o")
    )


class ReportOptions(JsonFlag, LedgerFlag, ForceFlag):
    folder: str = Field(".", description="The working directory to report on.", json_schema_extra=cli(argument=True))
    out: str | None = Field(
        None, description="The HTML page to write (default: FOLDER/report.html).", json_schema_extra=cli("--out", "-o")
    )
    open: bool = Field(False, description="Open the page in a web browser once written.")


class SweepConfig(BaseModel):
    """A sweep (its ``sweep.json``): fixed finetune options (``base``) and the options to
    vary (``grid``). Keys are :class:`FinetuneConfig` field names."""

    model_config = STRICT

    out: str = Field(
        default_factory=lambda: time.strftime("runs/sweep-%Y%m%d-%H%M%S"),
        description="Sweep folder, one sub-folder per configuration (default: runs/sweep-DATE-TIME).",
        json_schema_extra=cli("--out", "-o"),
    )
    rank_by: Literal["val_loss", "forecast"] = Field(
        "val_loss",
        description="val_loss, or forecast: forecast validation series after each run (charged) and rank by "
        "median MASE (mean of prey and predator).",
    )
    rank_series: int | None = Field(
        None,
        ge=1,
        description="Validation series of the forecast that ranks each run (--rank-by forecast; default: the runs' "
        "--forecast-series).",
    )
    base: dict[str, Any] = Field(default_factory=dict, description="Finetune options kept fixed.")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="Finetune option -> values to try, in order.")
    search: Literal["grid", "random", "tpe"] = Field(
        "grid",
        description="grid: every configuration, in order; random or tpe: --trials configurations chosen by "
        "Optuna from the grid's values and the file's space, ranked by forecast score (search extra).",
    )
    trials: int = Field(10, ge=1, description="Trials of a random or tpe search.")
    space: dict[str, Any] = Field(
        default_factory=dict,
        description='Search space (file only): option -> choices, or {"low": 1e-5, "high": 1e-2, "log": true}; '
        'options chosen together: "context+batch_size": [[512, 4], [1024, 2]].',
    )
    prune: Literal["none", "asha", "hyperband"] = Field(
        "none", description="Stop trials whose in-training forecast scores fall behind (random or tpe search)."
    )
    max_flops: float | None = Field(
        None, gt=0, description="FLOP cap for the whole search, trials' forecasts included."
    )
    storage: str | None = Field(
        None, description="Optuna storage URL shared by workers on several machines (default: a file in the sweep)."
    )

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, values: Any) -> Any:
        """Sweep files from before the rename: ``forecast_series`` set the ranking forecast's
        series and, unless ``base`` said otherwise, the runs' own (as it still does)."""
        if isinstance(values, dict) and "forecast_series" in values:
            values = dict(values)
            n = values.pop("forecast_series")
            values.setdefault("rank_series", n)
            values["base"] = {"forecast_series": n, **(values.get("base") or {})}
        return values

    @model_validator(mode="after")
    def _options(self) -> SweepConfig:
        """Keys are finetune options and values their type: ``2`` and ``2.0`` (or ``1e-3``
        and ``"1e-3"``) are one value, so a grid never runs a configuration twice."""
        for key in (*self.base, *self.grid):
            if key not in FinetuneConfig.model_fields:
                raise ValueError(f"{key!r} is not a finetune option")
            if key == "out":
                raise ValueError("'out' is the sweep's own folder (each configuration gets a sub-folder)")
        for key, domain in self.space.items():
            names = key.split(JOINT)
            if any(n not in FinetuneConfig.model_fields or n == "out" for n in names):
                raise ValueError(f"space: {key!r} is not a finetune option (or options joined by {JOINT!r})")
            if len(names) > 1:
                self.space[key] = _joint_choices(key, names, domain)
            elif isinstance(domain, dict):
                if not {"low", "high"} <= domain.keys() or not set(domain) <= {"low", "high", "log"}:
                    raise ValueError(f"space: {key!r} takes a list of choices or low, high and log")
                finetune_value(key, domain["low"]), finetune_value(key, domain["high"])
            elif not isinstance(domain, list) or not domain:
                raise ValueError(f"space: {key!r} has no values")
            else:
                self.space[key] = [finetune_value(key, v) for v in domain]
        named = option_names({**self.grid, **self.space})  # a key in both: the space's wins, as documented
        if len(set(named)) < len(named):
            twice = next(n for n in named if named.count(n) > 1)
            raise ValueError(f"{twice!r} is searched twice (in the grid, the space or a joint choice)")
        self.base = {key: finetune_value(key, value) for key, value in self.base.items()}
        for key, values in self.grid.items():
            if not values:
                raise ValueError(f"{key!r} has no values")
            unique = []
            for value in (finetune_value(key, v) for v in values):
                if value not in unique:
                    unique.append(value)
            self.grid[key] = unique
        return self


JOINT = "+"  # a space key of options chosen together: "context+batch_size": [[512, 4], [1024, 2]]


def option_names(keys) -> list[str]:
    """The finetune options a sweep's grid and space keys name, joint keys split."""
    return [name for key in keys for name in key.split(JOINT)]


def _joint_choices(key: str, names: list[str], domain: Any) -> list[list[Any]]:
    """A joint key's choices, each a list of one value per option, validated."""
    shape = f"space: {key!r} takes a list of choices, each a list of {len(names)} values ({', '.join(names)})"
    if not isinstance(domain, list) or not domain:
        raise ValueError(shape)
    if any(not isinstance(c, list) or len(c) != len(names) for c in domain):
        raise ValueError(shape)
    choices: list[list[Any]] = []
    for choice in ([finetune_value(n, v) for n, v in zip(names, c, strict=True)] for c in domain):
        if choice in choices:
            continue  # 32 and 32.0 are one value, as in a grid
        same = next((c for c in choices if choice_label(c) == choice_label(choice)), None)
        if same is not None:  # Optuna draws a choice by its label: one label must name one choice
            raise ValueError(f"space: {key!r}: choices {same} and {choice} read the same ({choice_label(choice)!r})")
        choices.append(choice)
    return choices


def choice_label(choice: list[Any]) -> str:
    """How a joint choice is named to Optuna, whose categorical choices are plain values."""
    return ", ".join(map(str, choice))


def finetune_value(key: str, value: Any) -> Any:
    """``value`` validated as the finetune option ``key`` (its type, bounds, choices)."""
    from pydantic import TypeAdapter, ValidationError

    field = FinetuneConfig.model_fields[key]
    kind = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    adapter = TypeAdapter(kind, config=ConfigDict(allow_inf_nan=False))
    try:
        return adapter.validate_python(value)
    except ValidationError as exc:
        raise ValueError(f"{key}: {value!r}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


class SweepFlags(SpendFlags):
    config: str | None = Field(None, description="sweep.json: {'out', 'rank_by', 'base': {...}, 'grid': {...}}.")
    fix: list[str] = Field(
        default_factory=list,
        description="Fix a finetune option: --set context=256 (repeatable).",
        json_schema_extra=cli("--set", metavar="OPTION=VALUE", whole=True),
    )
    fit_budget: bool = Field(False, description="Run, in order, the configurations that fit the budget.")
    jobs: int = Field(
        1,
        ge=1,
        description="Configurations run at once, each in its own process.",
        json_schema_extra=cli("--jobs", "-j"),
    )
    devices: list[str] = Field(
        default_factory=list, description="GPUs for --jobs, one per job in turn, e.g. 0,1 (default: every visible GPU)."
    )
    print_commands: bool = Field(
        False, description="Print one lvtime command line per configuration still to run; run nothing."
    )


def _git_commit() -> str | None:
    import subprocess  # here, not at the top: start-up time of every command

    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance() -> dict:
    """Versions of lvtime and the libraries that shape results, and the git commit."""
    import platform
    from importlib import metadata

    versions = {"lvtime": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "numpy", "tokenizers", "peft"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {"versions": versions, "git_commit": _git_commit(), "platform": platform.platform()}
