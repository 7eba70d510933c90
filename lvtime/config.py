"""Run configurations: validated pydantic models the CLI builds and the core takes.

A run folder always holds its resolved config as JSON, with library versions and the
git commit when known (:func:`provenance`). No torch import here.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from lvtime import __version__
from lvtime.data import DEFAULT_DATA_FILE
from lvtime.flops import DEFAULT_TARGETS
from lvtime.references import NAMES as REFERENCES

# Unknown option names are refused (a typo must not silently run the default), and so
# are NaN and infinities (``--lr inf`` would train to non-finite weights).
STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)
Dtype = Literal["auto", "float32", "bfloat16", "float16"]
# auto, cpu, mps, cuda or cuda:N (checked against the hardware when the run starts)
DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"


def _named(value: str) -> str:
    if not value.strip():
        raise ValueError("empty; name a hub id, a folder, a .gguf file or a preset")
    return value


ModelName = Annotated[str, AfterValidator(_named)]
DEFAULT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"  # the study's model


class FinetuneConfig(BaseModel):
    """Everything that determines a fine-tuning run."""

    model_config = STRICT

    data: str = Field(DEFAULT_DATA_FILE, description="HDF5 dataset.")
    model: ModelName = Field(DEFAULT_MODEL, description="Hub id, folder, .gguf or preset.")
    out: str = Field("runs/finetune", description="Run folder.")
    # LoRA
    rank: int = Field(4, ge=1, description="LoRA rank.")
    lora_alpha: float | None = Field(None, description="LoRA alpha (default: rank, scale 1).")
    lora_dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    targets: list[str] = Field(
        default_factory=lambda: list(DEFAULT_TARGETS), description="Modules to adapt, comma-separated."
    )
    # Optimisation
    lr: float = Field(1e-5, gt=0, description="Peak learning rate (AdamW).")
    steps: int = Field(100, ge=0, description="Optimizer steps.")
    batch_size: int = Field(4, ge=1, description="Windows per optimizer step (all processes).")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per step (batch-size / grad-accum each).")
    context: int = Field(512, ge=8, description="Tokens per window.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    schedule: Literal["constant", "cosine"] = Field("constant", description="Learning rate after warmup.")
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps.")
    clip_grad: float = Field(1.0, ge=0, description="Max gradient norm (0: off).")
    seed: int = Field(0, description="Seed for LoRA init, batch order and splits.")
    # Data
    decimals: int = Field(2, ge=0, le=8, description="LLMTIME decimals.")
    alpha_mode: Literal["per-series", "global"] = "per-series"
    alpha_from: Literal["series", "history"] = Field(
        "series",
        description="Per-series alpha from all steps (series) or, like a forecast prompt, from the first "
        "--history steps (history).",
    )
    history: int = Field(50, ge=1, description="Prompt length the forecasts use (for --alpha-from history).")
    window_starts: Literal["tokens", "steps"] = Field(
        "tokens",
        description="Training windows start every context/2 tokens (tokens) or at the nearest time-step "
        "boundary, one at each series' start (steps), as forecast prompts do.",
    )
    split_scheme: Literal["ordered", "random"] = Field(
        "ordered", description="ordered (0-69%/70-89%/90-100%) or random."
    )
    train_series: int | None = Field(None, ge=1, description="Use only the first N training series.")
    val_series: int | None = Field(None, ge=1, description="Use only the first N validation series.")
    # Evaluation and output
    eval_every: int = Field(0, ge=0, description="Validate every N steps (0: only at 0 and the end).")
    save_every: int = Field(0, ge=0, description="Checkpoint every N steps (0: eval_every).")
    keep_checkpoints: int = Field(2, ge=1, description="Checkpoints kept (the newest).")
    head: Literal["full", "numeric"] = Field("full", description="numeric: output layer restricted to LLMTIME tokens.")
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="auto, cpu, cuda, cuda:N or mps.")
    dtype: Dtype = Field("auto", description="auto: bf16 on capable GPUs, else fp32.")
    compile: bool = Field(False, description="torch.compile the model body (fewer kernel launches on GPUs).")
    convention: Literal["coursework", "exact", "2mnk"] = Field("coursework", description="FLOP counting convention.")

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.batch_size % self.grad_accum:
            raise ValueError("batch_size must be a multiple of grad_accum")
        return self

    @property
    def micro_batch(self) -> int:
        return self.batch_size // self.grad_accum

    @property
    def eval_steps(self) -> list[int]:
        """Steps after which validation runs: 0, every eval_every, and the last."""
        every = self.eval_every or self.steps or 1
        return sorted({0, self.steps, *range(every, self.steps, every)})


class ForecastConfig(BaseModel):
    """Everything that determines a ``baseline`` or ``forecast`` run."""

    model_config = STRICT

    data: str = Field(DEFAULT_DATA_FILE, description="HDF5 dataset.")
    model: ModelName | None = Field(None, description="Base model; None: the adapter's, else the default hub model.")
    adapter: str | None = Field(None, description="LoRA adapter folder (None: baseline).")
    series: list[int] = Field(default_factory=list, description="Series index; repeatable (none: use --split).")
    split: Literal["train", "val", "test"] = Field("test", description="Split to forecast when no --series.")
    limit: int | None = Field(None, ge=1, description="Only the first N selected series.")
    history: int = Field(50, ge=1, description="Steps given to the model.")
    horizon: int = Field(50, ge=1, description="Steps to forecast.")
    decimals: int = Field(2, ge=0, le=8, description="LLMTIME decimals.")
    int_digits: int = Field(2, ge=1, le=6, description="Max digits before the point (scaled values).")
    batch_size: int = Field(16, ge=1, description="Sequences decoded together.")
    num_samples: int = Field(1, ge=1, description="Samples per series (median + 10-90% band).")
    temperature: float = Field(0.0, ge=0, description="0: greedy; > 0: sampling.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling threshold.")
    seed: int = Field(0, description="Sampling seed.")
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="auto, cpu, cuda, cuda:N or mps.")
    dtype: Dtype = Field("auto", description="auto: bf16 on capable GPUs, else fp32.")
    convention: Literal["coursework", "exact", "2mnk"] = Field("coursework", description="FLOP counting convention.")
    out: str | None = Field(None, description="Write metrics.json, per_series.csv, forecasts.npz, PNGs.")
    plot_series: int = Field(4, ge=0, description="PNGs for this many series (plot extra).")
    references: list[Literal[REFERENCES]] = Field(
        default_factory=lambda: list(REFERENCES),
        description="Reference forecasts scored beside the model (ode: the physical limit).",
    )


def _git_commit() -> str | None:
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
    versions = {"lvtime": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "numpy", "tokenizers", "peft"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return {"versions": versions, "git_commit": _git_commit(), "platform": platform.platform()}
