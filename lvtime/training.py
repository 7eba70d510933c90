"""LoRA fine-tuning: the run's cost, the loss head and the loop (setup, fit, validate).

Data come from :mod:`lvtime.windows`, checkpoints from :mod:`lvtime.checkpoints`, process
groups from :mod:`lvtime.distributed`.

Speed: only LoRA parameters have gradients; the loss is computed from the final
hidden states, over the 14 LLMTIME tokens when ``head="numeric"``; weights run in the
chosen dtype with autocast; attention is PyTorch's scaled-dot-product kernel; a step
waits on the device once (for its loss).

Scale: under ``torchrun`` each process takes a slice of every batch (see
:mod:`lvtime.distributed`).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lvtime import checkpoints, forecast_eval, layout, llmtime, lora, signals, step0
from lvtime.config import FinetuneConfig
from lvtime.distributed import Dist
from lvtime.errors import Interrupted, TrainingError, UsageError
from lvtime.flops import Architecture, LoraSpec, forward_flops, train_step_flops
from lvtime.flops import total as sum_flops
from lvtime.run_state import RunState
from lvtime.windows import IGNORE, TrainingData, Windows

# --- cost -----------------------------------------------------------------------------


def step_flops(cfg: FinetuneConfig, arch: Architecture) -> float:
    spec = LoraSpec(rank=cfg.rank, targets=cfg.targets)
    return train_step_flops(arch, cfg.context, cfg.batch_size, spec, cfg.convention, llmtime.head_vocab(cfg.head))


def eval_flops(cfg: FinetuneConfig, arch: Architecture, val_windows: int) -> float:
    spec = LoraSpec(rank=cfg.rank, targets=cfg.targets)
    fwd = forward_flops(
        arch, cfg.context, val_windows, lora=spec, convention=cfg.convention, head_vocab=llmtime.head_vocab(cfg.head)
    )
    return sum_flops(fwd)


def unit_costs(cfg: FinetuneConfig, arch: Architecture, data: TrainingData) -> tuple[float, float, float]:
    """FLOPs of one training step, one validation pass and one forecast evaluation."""
    fs = data.forecast
    per_forecast = forecast_eval.estimate(cfg, arch, fs) if fs else 0.0
    return step_flops(cfg, arch), eval_flops(cfg, arch, len(data.val)), per_forecast


def run_estimate(cfg: FinetuneConfig, arch: Architecture, data: TrainingData, from_step: int | None = None) -> dict:
    """FLOPs of the steps still to run from checkpoint ``from_step`` (None: a new run) and
    the validation passes and forecast evaluations (each at its upper bound) they include.
    A checkpoint holds every evaluation of its step (even one at step 0: a run stopped
    during step 0's evaluations saves it after them), so those are not counted again; a run
    resumed at its last step gets that step's evaluations if it lacks them (counted)."""
    start = from_step or 0

    def left(steps: list[int]) -> int:
        return len([s for s in steps if s > start or (from_step is None and s == 0) or s == start == cfg.steps > 0])

    per_step, per_eval, per_forecast = unit_costs(cfg, arch, data)
    train = (cfg.steps - start) * per_step
    evaluation = left(cfg.eval_steps) * per_eval
    n_forecasts = left(cfg.forecast_steps) if data.forecast else 0
    forecast = n_forecasts * per_forecast
    return {
        "step_flops": per_step,
        "eval_pass_flops": per_eval,
        "train": train,
        "eval": evaluation,
        "forecast": forecast,
        "total": train + evaluation + forecast,
        "eval_passes": left(cfg.eval_steps),
        "forecast_passes": n_forecasts,
    }


# --- loss -----------------------------------------------------------------------------


class LossHead:
    """Next-token cross-entropy from the final hidden states, summed over labelled tokens.

    With ``ids`` (numeric head) the output layer is restricted to those token ids and
    targets are re-indexed into them (others become -100: callers check the data once,
    see :func:`check_numeric_targets`). Nothing here waits on the device, so GPU steps
    stay asynchronous.
    """

    def __init__(self, model, ids: list[int] | None):
        self.model = model
        self.ids = None if ids is None else torch.tensor(ids, device=model.device)
        self.remap = None
        if ids is not None:
            remap = torch.full((model.config.vocab_size,), IGNORE, dtype=torch.long)
            remap[self.ids.cpu()] = torch.arange(len(ids))
            self.remap = remap.to(model.device)

    def __call__(self, input_ids, attention_mask, labels) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss and the number of target tokens, both as tensors."""
        # Windows are padded on the right, so a real token never sees a pad (causality does
        # that) and a pad's own outputs are not targets: a causal-only mask gives the same
        # loss, and lets the fused attention kernel skip the upper triangle (measured: -27%).
        if right_padded(attention_mask):
            attention_mask = None
        # use_cache=False: transformers otherwise builds a KV cache that training never reads
        body = self.model.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        hidden = body.last_hidden_state
        h = hidden[:, :-1]
        y = labels[:, 1:]
        weight = self.model.lm_head.weight
        if self.ids is not None:
            weight = weight[self.ids]
            # -100 stays -100 (as an index it would read a real token's slot)
            y = torch.where(y == IGNORE, IGNORE, self.remap[y.clamp(min=0)])
        logits = h @ weight.t()
        if getattr(self.model.lm_head, "bias", None) is not None:
            bias = self.model.lm_head.bias
            logits = logits + (bias if self.ids is None else bias[self.ids])
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), y.flatten(), ignore_index=IGNORE, reduction="sum"
        )
        return loss, (y != IGNORE).sum()


def right_padded(mask: torch.Tensor) -> bool:
    """Whether every row's real tokens come first (no row has a pad before a real token)."""
    return bool((mask[:, 1:] <= mask[:, :-1]).all())


def check_numeric_targets(windows: Windows, ids: list[int]) -> None:
    """Refuse data whose targets fall outside the numeric head (once, before training)."""
    labels = windows.labels[windows.labels != IGNORE]
    outside = ~torch.isin(labels, torch.tensor(ids))
    if bool(outside.any()):
        raise TrainingError(
            f"--head numeric: token {int(labels[outside][0])} of the training data is not an "
            "LLMTIME token; use --head full"
        )


def numeric_ids(cfg: FinetuneConfig, tokenizer, data: TrainingData) -> list[int] | None:
    """The numeric head's token ids (None for the full head), checked against the data."""
    if cfg.head != "numeric":
        return None
    from lvtime.tokenizer import llmtime_token_ids

    ids = [*llmtime_token_ids(tokenizer, llmtime.LLMTIME_ALPHABET).values(), tokenizer.eos_token_id]
    check_numeric_targets(data.train, ids)
    check_numeric_targets(data.val, ids)
    return ids


# --- the loop -------------------------------------------------------------------------


@dataclass
class Progress:
    """What the loop reports after each step (the CLI draws it)."""

    step: int
    steps: int
    loss: float
    lr: float
    tokens_per_s: float
    flops: float
    val_loss: float | None = None
    forecast_score: float | None = None  # with --forecast-every, at the steps it forecast


@dataclass
class Result:
    out: Path
    steps_done: int
    val_losses: dict[int, float] = field(default_factory=dict)
    tokens: int = 0
    flops: float = 0.0  # spent by this invocation
    run_flops: float = 0.0  # spent by the whole run, across resumes
    in_flight: float = 0.0  # cost of the step or validation under way (0 between them)
    trainable: dict = field(default_factory=dict)  # LoRA parameter count and share
    wall_s: float = 0.0
    forecast_scores: dict[int, float] = field(default_factory=dict)
    best: dict | None = None  # step, score and FLOPs of the best forecast score
    stopped_early: bool = False  # --early-stop, or the caller asked (pruned)
    pruned: bool = False  # on_progress asked to stop (a search's pruner)


def lr_lambda(cfg: FinetuneConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        if cfg.warmup and step < cfg.warmup:
            return (step + 1) / cfg.warmup
        if cfg.schedule == "cosine" and cfg.steps > cfg.warmup:
            t = (step - cfg.warmup) / (cfg.steps - cfg.warmup)
            return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
        return 1.0

    return f


def batch_indices(step: int, micro: int, cfg: FinetuneConfig, n_windows: int) -> list[int]:
    """Window indices of micro-batch ``micro`` of optimizer step ``step``.

    A pure function of the seed and the step (a fresh seeded permutation per epoch),
    so a resumed run sees exactly the batches an uninterrupted one would.
    """
    start = (step * cfg.batch_size) + micro * cfg.micro_batch
    out = []
    for k in range(start, start + cfg.micro_batch):
        epoch, offset = divmod(k, n_windows)
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        out.append(int(torch.randperm(n_windows, generator=gen)[offset]))
    return out


def check_compile(device: str) -> None:
    """torch.compile on a CPU writes and builds C++: refuse ``--compile`` in one line,
    before anything is charged, where the compiler torch looks for is missing."""
    if not device.startswith("cpu"):
        return
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as exc:  # noqa: BLE001 - torch's own error type is private and moves
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UsageError(
            f"--compile on a CPU needs the C++ compiler torch.compile builds with (g++, or $CXX): "
            f"{reason}; install one or drop --compile"
        ) from None


def _autocast(device: str, dtype: torch.dtype):
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def validation_loss(loss_head: LossHead, windows: Windows, micro: int, device: str, dtype, dist: Dist) -> float:
    """Mean validation loss per target token, over this process's share of the windows."""
    total, count = 0.0, 0
    mine = range(dist.rank, len(windows), dist.world)
    idx = list(mine)
    with torch.no_grad(), _autocast(device, dtype):
        for i in range(0, len(idx), micro):
            sel = idx[i : i + micro]
            loss, n = loss_head(
                windows.input_ids[sel].to(device),
                windows.attention_mask[sel].to(device),
                windows.labels[sel].to(device),
            )
            total += float(loss)
            count += int(n)
    total, count = dist.sum(total, count)
    return total / max(count, 1)


def train(
    cfg: FinetuneConfig,
    loaded,
    data: TrainingData,
    run_dir: Path,
    dist: Dist,
    resume_step: int | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    result: Result | None = None,
) -> Result:
    """Run (or continue) training; writes metrics, checkpoints and ``final/`` on rank 0.

    Raises :class:`Interrupted` after saving when signalled, :class:`TrainingError` on a
    non-finite loss (after saving the last good state). ``result``, when given, is
    kept up to date as the run goes, so a caller still knows what was spent (FLOPs of
    this invocation) after an exception.
    """
    run = _Run(cfg, loaded, data, run_dir, dist, result or Result(out=run_dir, steps_done=0))
    run.setup(resume_step)
    run.fit(on_progress)
    return run.finish()


class _Books:
    """A run's account: its :class:`RunState` across resumes, what this invocation spent
    (its ledger entry's), ``metrics.jsonl`` and checkpoints. Writes on rank 0 only."""

    def __init__(self, cfg: FinetuneConfig, run_dir: Path, dist: Dist, result: Result):
        self.cfg, self.run_dir, self.dist, self.result = cfg, run_dir, dist, result
        self.state = RunState()
        self.spent_here = 0.0

    def resume(self, step: int, model, optimizer, scheduler) -> int:
        start, self.state = checkpoints.load(self.run_dir, step, model, optimizer, scheduler)
        if self.dist.main:
            layout.trim_metrics(self.run_dir, start)
        return start

    def resume_hint(self) -> str:
        from lvtime.shell import command_line

        return "Resume with: " + command_line(["lvtime", "finetune", "--resume", str(self.run_dir)])

    def spend(self, flops: float) -> None:
        self.spent_here += flops
        self.state.flops_total += flops
        self.result.flops, self.result.run_flops = self.spent_here, self.state.flops_total
        self.result.in_flight = 0.0

    def log(self, row: dict) -> None:
        if self.dist.main:
            layout.append_metrics(self.run_dir, {**row, "time": time.time()})

    def checkpoint(self, step: int, model, optimizer, scheduler) -> None:
        if self.dist.main:
            checkpoints.save(
                self.run_dir, step, model, optimizer, scheduler, self.state, self.cfg, self.cfg.keep_checkpoints
            )

    def stop_non_finite(self, what: str) -> None:
        """Raise naming the newest checkpoint whose tensors are all finite."""
        good = checkpoints.newest_good(self.run_dir).step if self.dist.main else None
        where = "no finite checkpoint was saved"
        if good is not None:
            where = f"the last good state is in {checkpoints.folder(self.run_dir, good)}"
        raise TrainingError(f"{what}; {where} (try a lower --lr)")

    def record_forecast(self, step: int, r: dict, model) -> None:
        """An evaluation's cost, score (``best/`` when it is the best) and row (with the
        references' scores at step 0: the plot's and report's lines)."""
        self.spend(r["flops"])
        if self.state.note_forecast(step, r["score"]):
            self.save_best(model)
        row = {"step": step, "forecast_score": r["score"], **{sp: r[sp] for sp in ("prey", "predator")}}
        row.update(forecast_flops=r["flops"], parse_failures=r["parse_failures"], flops=self.state.flops_total)
        row.update({k: r[k] for k in ("references", "reference_species", "reused") if k in r})
        self.log(row)

    def record_validation(self, step: int, val: float, flops: float) -> None:
        self.spend(flops)
        self.state.val_losses = {**self.state.val_losses, str(step): val}
        self.log({"step": step, "val_loss": val, "val_ppl": math.exp(min(val, 50))})

    def save_best(self, model) -> None:
        """``best/``: the adapter of the best forecast score so far, replaced whole."""
        best = layout.best_adapter(self.run_dir)
        tmp = best.with_name(f".{best.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        checkpoints.save_adapter(model, tmp, self.cfg)
        shutil.rmtree(best, ignore_errors=True)
        os.replace(tmp, best)

    def finish(self, model) -> Result:
        result, state = self.result, self.state
        result.val_losses = {int(k): v for k, v in state.val_losses.items()}
        result.forecast_scores = {int(k): v for k, v in state.forecast_scores.items()}
        result.best = state.best.model_dump() if state.best else None
        result.tokens = state.tokens_total
        if self.dist.main:
            checkpoints.save_adapter(model, layout.final_adapter(self.run_dir), self.cfg)
        return result


class _Stepper:
    """The optimizing side of a run: the adapters' parameters, the loss head, AdamW and its
    schedule, and one optimizer step over every process's share of the batch."""

    def __init__(self, cfg: FinetuneConfig, model, loss_head: LossHead, data: TrainingData, dist: Dist, amp):
        self.cfg, self.data, self.dist, self.loss_head, self.amp = cfg, data, dist, loss_head, amp
        self.device = model.device
        self.params = lora.lora_parameters(model)
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg))

    def step(self, step: int, on_non_finite: Callable[[], None]) -> tuple[float, float, int]:
        """One optimizer step; (mean loss, its learning rate, tokens). ``on_non_finite``
        runs (and must raise) before a non-finite loss reaches the weights."""
        cfg, dist = self.cfg, self.dist
        self.optimizer.zero_grad(set_to_none=True)
        batches = [batch_indices(step, m, cfg, len(self.data.train)) for m in range(cfg.grad_accum)]
        mean_loss = self._backward([b[dist.rank :: dist.world] for b in batches])  # each process: its slice
        if not math.isfinite(mean_loss):
            on_non_finite()
        if dist.world > 1:
            for p in self.params:
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
        if cfg.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.clip_grad)
        lr_now = self.scheduler.get_last_lr()[0]
        self.optimizer.step()
        self.scheduler.step()
        return mean_loss, lr_now, int(self.data.train.attention_mask[[i for b in batches for i in b]].sum())

    def _backward(self, shards: list[list[int]]) -> float:
        """Gradients of the mean loss over every process's micro-batches; returns that loss."""
        train = self.data.train
        n_targets = sum(int((train.labels[s][:, 1:] != IGNORE).sum()) for s in shards)
        (global_targets,) = self.dist.sum(n_targets)
        loss_sum = 0.0
        for sel in shards:
            if not sel:
                continue
            with self.amp():
                loss, _ = self.loss_head(
                    train.input_ids[sel].to(self.device),
                    train.attention_mask[sel].to(self.device),
                    train.labels[sel].to(self.device),
                )
            (loss / max(global_targets, 1)).backward()
            loss_sum += float(loss.detach())
        (loss_total,) = self.dist.sum(loss_sum)
        return loss_total / max(global_targets, 1)


class _Evaluation:
    """A run's in-training forecasts: the adapter as it is, on the validation series. Step
    0's (the adapter is all zeros: the base model's forecasts) is shared by the runs of a
    sweep with the same settings (:mod:`lvtime.step0`): computed and charged once."""

    def __init__(self, run: _Run):
        self.run = run
        fs, loaded = run.data.forecast, run.loaded
        self.shared = step0.cache_dir(run.run_dir) if fs is not None else None
        self.key = step0.key(run.cfg, fs, run.cfg.model, loaded.dtype, loaded.device) if self.shared else ""

    def __call__(self, step: int) -> dict:
        run, fs = self.run, self.run.data.forecast
        if step == 0 and (done := step0.load(self.shared, self.key)):
            return {**done, "flops": 0.0, "reused": True}
        run.model.eval()
        with run.amp():
            r = forecast_eval.evaluate(run.model, run.loaded.tokenizer, run.loaded.architecture, run.cfg, fs)
        run.model.train()
        if step == 0:  # the references on the same series, once
            r.update(forecast_eval.reference_rows(fs))
            step0.store(self.shared, self.key, r)
        return r


class _Run:
    """One invocation of a training run: setup -> fit (steps, validation, forecasts,
    checkpoints) -> finish. What it spends and keeps goes through its :class:`_Books`."""

    def __init__(self, cfg: FinetuneConfig, loaded, data: TrainingData, run_dir: Path, dist: Dist, result: Result):
        self.cfg, self.loaded, self.data, self.run_dir = cfg, loaded, data, run_dir
        self.dist, self.result = dist, result
        self.model, self.device = loaded.model, loaded.device
        self.dtype = getattr(torch, loaded.dtype)
        self.books = _Books(cfg, run_dir, dist, result)
        self.last_score: float | None = None  # of the latest forecast evaluation
        self.start = 0
        self.t0 = time.perf_counter()

    def setup(self, resume_step: int | None) -> None:
        """Adapters, loss head, optimizer and schedule; the checkpoint's state when resuming."""
        cfg, model = self.cfg, self.model
        torch.manual_seed(cfg.seed)
        lora.inject(model, cfg.rank, cfg.lora_alpha, cfg.lora_dropout, cfg.targets)
        self.result.trainable = lora.trainable_summary(model)
        if cfg.compile:
            model.model.compile()  # in place: parameter names (and adapter keys) are unchanged
        self.loss_head = LossHead(model, numeric_ids(cfg, self.loaded.tokenizer, self.data))
        self.evaluation = _Evaluation(self)
        self.stepper = _Stepper(cfg, model, self.loss_head, self.data, self.dist, self.amp)
        if resume_step is not None:
            self.start = self.books.resume(resume_step, model, self.stepper.optimizer, self.stepper.scheduler)
        self.per_step, self.per_eval, self.per_forecast = unit_costs(cfg, self.loaded.architecture, self.data)
        self.result.steps_done, self.result.tokens = self.start, self.books.state.tokens_total

    def fit(self, on_progress: Callable[[Progress], None] | None) -> None:
        """Steps from ``start`` to ``cfg.steps``: validate, forecast and checkpoint on
        schedule; stop when signalled (even during step 0's evaluations, which are then
        kept and never charged twice), or early when forecasts stopped improving."""
        cfg = self.cfg
        self.model.train()
        save_every = cfg.save_every or cfg.eval_every
        with signals.StopFlag() as stop:
            if self.start == 0 and "0" not in self.books.state.val_losses:
                val0, score0 = self.evaluate_due(0)
                if on_progress:
                    flops = self.books.state.flops_total
                    on_progress(Progress(0, cfg.steps, float("nan"), cfg.lr, 0.0, flops, val0, score0))
            elif self.start == cfg.steps:  # resumed at its last step (--steps equal to the checkpoint's)
                self.evaluate_due(cfg.steps)
                self.checkpoint(cfg.steps)
            if self.dist.any(stop.raised):  # during step 0's evaluations: keep them, charged once
                self.checkpoint(self.start)
                self.stop(self.start)
            for step in range(self.start, cfg.steps):
                mean_loss, lr_now, tps = self.step(step)
                done = step + 1
                val = self.validate(done) if done in cfg.eval_steps else None
                forecast = done in cfg.forecast_steps
                early = forecast and self.forecast(done)
                if on_progress:
                    score = self.last_score if forecast else None
                    flops = self.books.state.flops_total
                    progress = Progress(done, cfg.steps, mean_loss, lr_now, tps, flops, val, score)
                    self.result.pruned = self.dist.any(bool(on_progress(progress)))  # True: the caller stops it
                    early = early or self.result.pruned
                stopping = self.dist.any(stop.raised)
                if stopping or early or (save_every and done % save_every == 0) or done == cfg.steps:
                    self.checkpoint(done)
                if early:
                    self.result.stopped_early = True
                    return
                if stopping:
                    self.stop(done)

    def stop(self, done: int) -> None:
        """Raise :class:`Interrupted` (the checkpoint saved) with the resume command."""
        self.result.wall_s = time.perf_counter() - self.t0
        stopped = f"stopped after step {done} of {self.cfg.steps}; checkpoint saved. "
        raise Interrupted(stopped + self.books.resume_hint())

    def evaluate_due(self, step: int) -> tuple[float | None, float | None]:
        """Step ``step``'s validation and forecast where due and not logged yet (step 0,
        once; the last step of a run resumed there); (validation loss, forecast score)."""
        cfg, state = self.cfg, self.books.state
        val = self.validate(step) if str(step) not in state.val_losses else None
        due = step in cfg.forecast_steps and str(step) not in state.forecast_scores
        if due:
            self.forecast(step)  # never an early stop here: at 0 there is nothing to compare with
        return val, self.last_score if due else None

    def forecast(self, step: int) -> bool:
        """Forecast the validation series with the adapter as it is (rank 0), log the
        scores, keep the best adapter in ``best/``; True when early stopping is due."""
        cfg, books = self.cfg, self.books
        if self.dist.main:
            self.result.in_flight = self.per_forecast
            r = self.evaluation(step)
            self.last_score = r["score"]
            books.record_forecast(step, r, self.model)
        return self.dist.any(bool(cfg.early_stop) and books.state.evals_since_best >= cfg.early_stop)

    def amp(self):
        return _autocast(self.device, self.dtype)

    def step(self, step: int) -> tuple[float, float, float]:
        """One optimizer step, spent and logged; returns (mean loss, its learning rate, tokens/s)."""
        self.result.in_flight = self.per_step
        t_step = time.perf_counter()
        mean_loss, lr_now, tokens = self.stepper.step(step, lambda: self._non_finite(step))
        self.books.spend(self.per_step)
        state = self.books.state
        state.tokens_total += tokens
        elapsed = time.perf_counter() - t_step
        tps = tokens / elapsed if elapsed > 0 else 0.0
        self.result.steps_done = step + 1
        row = {"step": step + 1, "loss": mean_loss, "lr": lr_now, "tokens_total": state.tokens_total}
        self.books.log({**row, "tokens_per_s": tps, "flops": state.flops_total})
        return mean_loss, lr_now, tps

    def _non_finite(self, step: int) -> None:
        self.result.steps_done = step
        with contextlib.suppress(TrainingError):  # already non-finite: an older one is the last good
            self.checkpoint(step, stop_if_bad=False)  # the state before this step
        self.books.stop_non_finite(f"non-finite training loss at step {step + 1}")

    def validate(self, step: int) -> float:
        self.result.in_flight = self.per_eval
        self.model.eval()
        val = validation_loss(self.loss_head, self.data.val, self.cfg.micro_batch, self.device, self.dtype, self.dist)
        self.model.train()
        self.books.record_validation(step, val, self.per_eval)
        return val

    def checkpoint(self, step: int, stop_if_bad: bool = True) -> None:
        """Save the run at ``step``; weights that are not finite stop it (naming the last good state)."""
        try:
            self.books.checkpoint(step, self.model, self.stepper.optimizer, self.stepper.scheduler)
        except TrainingError:
            if not stop_if_bad:
                raise
            self.books.stop_non_finite(f"the weights are not finite after step {step}")

    def finish(self) -> Result:
        self.result.wall_s = time.perf_counter() - self.t0
        return self.books.finish(self.model)
