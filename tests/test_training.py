"""The trainer and `lvtime finetune` on tiny-qwen2: data windows, the run folder, budget,
resume, interruption, NaN, and two processes under torchrun."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from lvtime import checkpoints, data, training, windows  # noqa: E402
from lvtime.cli import app  # noqa: E402
from lvtime.config import FinetuneConfig  # noqa: E402
from lvtime.errors import BudgetError, Interrupted, TrainingError, UsageError  # noqa: E402
from lvtime.finetune_run import finetune  # noqa: E402
from lvtime.flops import PRESETS  # noqa: E402
from lvtime.ledger import Ledger  # noqa: E402

runner = CliRunner()


def cfg(h5, out, **kw):
    base = dict(
        data=str(h5),
        model="tiny-qwen2",
        out=str(out),
        steps=4,
        context=32,
        batch_size=2,
        lr=1e-3,
        val_series=2,
        eval_every=2,
    )
    return FinetuneConfig(**{**base, **kw})


def metric_rows(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_windows_stride_padding_and_masks():
    w = windows.make_windows([list(range(1, 11)), [7, 8, 9]], context=4, stride=2, pad_id=0)
    assert w.input_ids.tolist() == [[1, 2, 3, 4], [3, 4, 5, 6], [5, 6, 7, 8], [7, 8, 9, 10], [7, 8, 9, 0]]
    assert w.attention_mask[-1].tolist() == [1, 1, 1, 0]
    assert w.labels[-1].tolist() == [7, 8, 9, -100]
    assert w.n_tokens == 19
    val = windows.make_windows([list(range(1, 11))], context=4, stride=4, pad_id=0)
    assert val.input_ids.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 0]]


def test_batch_order_is_a_pure_function_of_seed_and_step():
    split = FinetuneConfig(batch_size=4, grad_accum=2, seed=3)
    whole = FinetuneConfig(batch_size=4, grad_accum=1, seed=3)
    micro = [training.batch_indices(s, m, split, 10) for s in range(5) for m in range(2)]
    steps = [training.batch_indices(s, 0, whole, 10) for s in range(5)]
    # a step's windows do not depend on how it is split into micro-batches
    assert steps == [micro[2 * s] + micro[2 * s + 1] for s in range(5)]
    flat = [i for b in steps for i in b]
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))  # epochs = permutations
    assert flat[:10] != flat[10:20]  # a fresh order each epoch
    other = [training.batch_indices(s, 0, whole.model_copy(update={"seed": 4}), 10) for s in range(5)]
    assert other != steps


def test_end_to_end_run_folder_ledger_and_peft(h5, tmp_path):
    out = tmp_path / "runs" / "a"
    summary = finetune(cfg(h5, out))
    for name in (
        "config.json",
        "metrics.jsonl",
        "summary.json",
        "final/adapter_config.json",
        "final/adapter_model.safetensors",
        "checkpoints/step-4/state.pt",
    ):
        assert (out / name).exists(), name
    assert sorted(summary.val_losses) == [0, 2, 4]
    assert summary.val_loss_after < summary.val_loss_before
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["rank"] == 4 and "torch" in config["versions"]
    (entry,) = Ledger().read().entries
    assert entry.status == "completed" and entry.kind == "finetune"
    # what was spent equals the estimate for the tokens processed: 4 steps + 3 evals
    step = training.step_flops(cfg(h5, out), PRESETS["tiny-qwen2"])
    n_val = summary.val_windows
    ev = training.eval_flops(cfg(h5, out), PRESETS["tiny-qwen2"], n_val)
    assert entry.spent_flops == pytest.approx(4 * step + 3 * ev)
    assert entry.estimated_flops == pytest.approx(entry.spent_flops)
    peft = pytest.importorskip("peft")
    from lvtime.models import load_model

    base = load_model("tiny-qwen2").model
    peft.PeftModel.from_pretrained(base, out / "final")


def test_training_loss_falls_on_an_easy_series(tmp_path):
    easy = data.Dataset(torch.ones(10, 12, 2).numpy() * 5.0, torch.arange(12.0).numpy())
    path = tmp_path / "easy.h5"
    data.save_dataset(path, easy)
    finetune(
        cfg(
            path,
            tmp_path / "e",
            steps=20,
            lr=3e-2,
            eval_every=0,
            rank=8,
            head="numeric",
            targets=["q_proj", "v_proj", "up_proj", "down_proj"],
        )
    )
    losses = [r["loss"] for r in metric_rows(tmp_path / "e") if "loss" in r]
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3


def test_existing_run_needs_resume_or_force(h5, tmp_path):
    out = tmp_path / "r"
    finetune(cfg(h5, out, steps=1))
    with pytest.raises(UsageError, match="already exists"):
        finetune(cfg(h5, out, steps=1))
    finetune(cfg(h5, out, steps=1), force=True)


def test_over_budget_is_refused_before_anything_is_written(h5, tmp_path):
    Ledger().init(1e6)
    with pytest.raises(BudgetError):
        finetune(cfg(h5, tmp_path / "o"))
    assert not (tmp_path / "o").exists() and not Ledger().read().entries
    r = runner.invoke(
        app,
        [
            "finetune",
            str(h5),
            "--model",
            "tiny-qwen2",
            "--out",
            str(tmp_path / "o"),
            "--steps",
            "1",
            "--context",
            "32",
            "--quiet",
        ],
    )
    assert r.exit_code == 3
    finetune(cfg(h5, tmp_path / "o", steps=1), allow_over_budget=True)
    assert Ledger().read().entries[0].over_budget


def test_dry_run_loads_no_weights_and_writes_nothing(h5, tmp_path, monkeypatch):
    from lvtime import models

    def no_loading(*args, **kwargs):
        raise AssertionError("--dry-run loaded a model")

    monkeypatch.setattr(models, "load_model", no_loading)
    r = runner.invoke(
        app,
        [
            "finetune",
            str(h5),
            "--model",
            "tiny-qwen2",
            "--out",
            str(tmp_path / "d"),
            "--context",
            "32",
            "--dry-run",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["data"]["train_windows"] > 0 and plan["estimate"]["total"] > 0
    assert plan["budget"]["remaining_after"] == pytest.approx(1e17 - plan["estimate"]["total"])
    assert not (tmp_path / "d").exists() and not Ledger().read().entries


def test_resume_reproduces_an_uninterrupted_run(h5, tmp_path):
    straight = tmp_path / "straight"
    finetune(cfg(h5, straight, steps=6, save_every=1, eval_every=3))

    def stop_after_3(p):
        if p.step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    broken = tmp_path / "broken"
    with pytest.raises(Interrupted, match="--resume"):
        finetune(cfg(h5, broken, steps=6, save_every=1, eval_every=3), on_progress=stop_after_3)
    entry = Ledger().read().entries[-1]
    assert entry.status == "interrupted" and 0 < entry.spent_flops < entry.estimated_flops
    finetune(cfg(h5, broken, steps=6, save_every=1, eval_every=3), resume=True)
    a = [r["loss"] for r in metric_rows(straight) if "loss" in r]
    b = [r["loss"] for r in metric_rows(broken) if "loss" in r]
    assert len(a) == len(b) == 6
    assert b == pytest.approx(a, rel=1e-6)
    va = json.loads((straight / "summary.json").read_text())["val_loss_after"]
    vb = json.loads((broken / "summary.json").read_text())["val_loss_after"]
    assert vb == pytest.approx(va, rel=1e-6)


def test_nan_loss_stops_with_last_good_checkpoint(h5, tmp_path, monkeypatch):
    real = training.LossHead.__call__
    calls = {"train": 0}

    def poisoned(self, *args):
        loss, n = real(self, *args)
        if self.model.training:
            calls["train"] += 1
            if calls["train"] == 3:
                return loss * float("nan"), n
        return loss, n

    monkeypatch.setattr(training.LossHead, "__call__", poisoned)
    out = tmp_path / "nan"
    with pytest.raises(TrainingError, match="non-finite"):
        finetune(cfg(h5, out, steps=5))
    assert (out / "checkpoints" / "step-2" / "state.pt").exists()
    assert Ledger().read().entries[0].status == "failed"


def test_numeric_head_trains_and_costs_less(h5, tmp_path):
    full = finetune(cfg(h5, tmp_path / "f", steps=2))
    numeric = finetune(cfg(h5, tmp_path / "n", steps=2, head="numeric"))
    assert numeric.flops_this_invocation < full.flops_this_invocation
    assert numeric.val_loss_vocabulary.startswith("numeric")
    assert numeric.val_loss_before < full.val_loss_before  # 14-way vs 151,936-way


@pytest.mark.slow
def test_sigint_through_a_real_process_then_resume(h5, tmp_path):
    out = tmp_path / "sig"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "lvtime",
        "finetune",
        str(h5),
        "--model",
        "tiny-qwen2",
        "--out",
        str(out),
        "--steps",
        "500",
        "--context",
        "32",
        "--batch-size",
        "2",
        "--val-series",
        "2",
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if (out / "metrics.jsonl").exists() and sum(1 for r in metric_rows(out) if "loss" in r) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Resume with: lvtime finetune --resume" in err and "Traceback" not in err
    (entry,) = Ledger().read().entries
    assert entry.status == "interrupted" and entry.spent_flops > 0
    done = max(checkpoints.steps(out))
    r = runner.invoke(app, ["finetune", "--resume", str(out), "--steps", str(done + 1), "--quiet", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["steps"] == done + 1


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("torchrun") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "torchrun")),
    reason="torchrun not found",
)
def test_two_processes_match_one(h5, tmp_path):
    single = finetune(cfg(h5, tmp_path / "one", steps=3, eval_every=0))
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    torchrun = torchrun if os.path.exists(torchrun) else shutil.which("torchrun")
    cmd = [
        torchrun,
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "lvtime",
        "finetune",
        str(h5),
        "--model",
        "tiny-qwen2",
        "--out",
        str(tmp_path / "two"),
        "--steps",
        "3",
        "--context",
        "32",
        "--batch-size",
        "2",
        "--lr",
        "1e-3",
        "--val-series",
        "2",
        "--quiet",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["val_loss_after"] == pytest.approx(single.val_loss_after, rel=1e-4)
    entries = Ledger().read().entries
    assert len(entries) == 2  # one per run, not one per process
    assert entries[1].spent_flops == pytest.approx(entries[0].spent_flops)


def test_windows_start_at_time_step_boundaries():
    sep = 9
    seq = [1, 2, sep, 3, 4, 5, sep, 6, sep, 7, 8, 8, 8, sep, 1, 2]
    starts = windows.window_starts(seq, context=6, stride=3, step_sep=sep)
    boundaries = {0} | {i + 1 for i, t in enumerate(seq) if t == sep}
    assert starts[0] == 0 and set(starts) <= boundaries
    assert starts == sorted(set(starts)) and starts[-1] + 6 >= len(seq)  # forward, to the end
    assert windows.window_starts(seq, context=6, stride=3) == [0, 3, 6, 9, 12]


def test_forecast_aligned_data_options(h5, tmp_path):
    from lvtime import llmtime
    from lvtime.models import tokenizer_for

    tok = tokenizer_for("tiny-qwen2")
    c = cfg(h5, tmp_path / "a", alpha_from="history", history=5, window_starts="steps")
    ds = data.load_dataset(h5)
    (seq,) = windows.encode_series(ds, [3], tok, c, None)
    expected, _ = llmtime.encode(ds.trajectories[3], llmtime.compute_alpha(ds.trajectories[3, :5]))
    assert tok.decode(seq) == expected
    d = windows.prepare_data(c, ds, tok)
    semi = tok.encode(";", add_special_tokens=False)[0]
    first = d.train.input_ids[:, 0]
    # every window starts with a digit (a step's first value), never mid-number after a ';'
    digits = set(tok.encode("0123456789", add_special_tokens=False))
    assert set(first.tolist()) <= digits and semi not in first.tolist()


def test_numeric_head_keeps_ignored_targets_ignored():
    from lvtime.models import load_model

    tiny = load_model("tiny-qwen2")
    vocab = tiny.model.config.vocab_size
    # a head whose ids include V - 99: the slot a -100 label read when used as an index
    head = training.LossHead(tiny.model, [5, 7, vocab - 99])
    ids = torch.tensor([[5, 7, vocab - 99, 5]])
    labels = torch.tensor([[-100, -100, vocab - 99, 5]])
    _, count = head(ids, torch.ones_like(ids), labels)
    assert int(count) == 2  # only the two real targets count


def test_warmup_then_cosine_schedule_values():
    cosine = training.lr_lambda(FinetuneConfig(steps=10, warmup=2, schedule="cosine"))
    assert [cosine(s) for s in (0, 1, 2, 6, 10)] == pytest.approx([0.5, 1.0, 1.0, 0.5, 0.0])
    constant = training.lr_lambda(FinetuneConfig(steps=10, warmup=4))
    assert [constant(s) for s in (0, 3, 4, 9)] == pytest.approx([0.25, 1.0, 1.0, 1.0])


def _tiny_run(h5, out, **kw):
    from lvtime import finetune_run

    cfg = FinetuneConfig(data=str(h5), model="tiny-qwen2", out=str(out), context=32, val_series=2, lr=1e-2, **kw)
    return finetune_run.finetune(cfg)


def test_gradient_accumulation_equals_one_big_batch(h5, tmp_path):
    from safetensors.torch import load_file

    whole = _tiny_run(h5, tmp_path / "whole", steps=2, batch_size=4, grad_accum=1)
    split = _tiny_run(h5, tmp_path / "split", steps=2, batch_size=4, grad_accum=2)
    assert split.val_loss_after == pytest.approx(whole.val_loss_after, rel=1e-5)
    a = load_file(tmp_path / "whole" / "final" / "adapter_model.safetensors")
    b = load_file(tmp_path / "split" / "final" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)  # training moved the adapter


def test_bfloat16_training_runs_with_a_finite_loss(h5, tmp_path):
    summary = _tiny_run(h5, tmp_path / "bf16", steps=2, batch_size=2, dtype="bfloat16")
    assert math.isfinite(summary.val_loss_after) and summary.steps == 2
    config = json.loads((tmp_path / "bf16" / "config.json").read_text())
    assert config["config"]["dtype"] == "bfloat16"


def test_only_the_newest_checkpoints_are_kept(h5, tmp_path):
    from lvtime import checkpoints

    _tiny_run(h5, tmp_path / "keep", steps=4, batch_size=2, save_every=1, keep_checkpoints=2)
    assert checkpoints.steps(tmp_path / "keep") == [3, 4]


def test_right_padded_windows_train_on_a_causal_only_mask_with_the_same_loss():
    """Windows are padded on the right: the loss head drops their mask (so attention can
    take the causal kernel) and the loss of every real token is what the mask gave."""
    from tiny import qwen2

    model = qwen2(seed=3)
    ids = torch.randint(0, 300, (3, 12))
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[1, 7:] = 0
    mask[2, 2:] = 0
    assert training.right_padded(mask) and not training.right_padded(mask.flip(1))
    labels = ids.masked_fill(mask == 0, windows.IGNORE)
    with torch.no_grad():
        masked = model.model(input_ids=ids, attention_mask=mask).last_hidden_state
        causal = model.model(input_ids=ids).last_hidden_state
        torch.testing.assert_close(causal[mask == 1], masked[mask == 1], rtol=1e-5, atol=1e-5)
        loss, n = training.LossHead(model, None)(ids, mask, labels)
        logits = masked[:, :-1] @ model.lm_head.weight.t()
        expected = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), labels[:, 1:].flatten(), ignore_index=windows.IGNORE, reduction="sum"
        )
    assert int(n) == int((labels[:, 1:] != windows.IGNORE).sum())
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-5)


def test_loss_on_horizon_masks_each_windows_prompt_steps():
    sep, pad = 9, 0
    seqs = [[1, 2, sep, 3, sep, 4, 5, sep, 6, sep], [7, sep, 8, sep]]
    w = windows.make_windows(seqs, context=10, stride=5, pad_id=pad, step_sep=sep, prompt_steps=2)
    # targets start after the 2nd ';' of each window; padding is never a target
    assert w.labels[0].tolist() == [-100] * 5 + [4, 5, sep, 6, sep]
    assert w.labels[1].tolist() == [-100] * 10
    assert windows.make_windows(seqs, 10, 5, pad, sep).labels[0].tolist() == seqs[0]


def test_loss_on_horizon_and_extra_training_series(h5, tmp_path):
    from lvtime import simulation
    from lvtime.models import tokenizer_for

    tok = tokenizer_for("tiny-qwen2")
    ds = data.load_dataset(h5)
    with pytest.raises(ValueError, match="needs --window-starts steps"):
        cfg(h5, tmp_path / "a", loss_on="horizon")
    c = cfg(h5, tmp_path / "a", loss_on="horizon", window_starts="steps", history=5, context=64)
    d = windows.prepare_data(c, ds, tok)
    plain = windows.prepare_data(c.model_copy(update={"loss_on": "all"}), ds, tok)
    assert torch.equal(d.train.input_ids, plain.train.input_ids)  # same windows, same FLOPs
    assert 0 < int((d.train.labels != -100).sum()) < int((plain.train.labels != -100).sum())
    extra = tmp_path / "extra.h5"
    data.save_dataset(extra, simulation.simulate(n=7, points=ds.n_points, seed=9))
    more = windows.prepare_data(c.model_copy(update={"extra_train": str(extra)}), ds, tok)
    assert len(more.train) > len(d.train) and torch.equal(more.val.input_ids, d.val.input_ids)
    r = finetune(c.model_copy(update={"extra_train": str(extra), "steps": 2}))
    assert math.isfinite(r.val_loss_after)


def test_compiled_and_eager_training_give_the_same_losses(h5, tmp_path):
    """torch.compile (inductor, C++ on a CPU) against eager: the same losses at every step.
    Where no C++ compiler is found, --compile is refused in one line, charging nothing."""
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception:  # noqa: BLE001 - no toolchain on this machine
        with pytest.raises(UsageError, match="C\\+\\+ compiler"):
            finetune(cfg(h5, tmp_path / "compiled", steps=2, compile=True))
        assert Ledger().read().entries == []
        return
    eager = finetune(cfg(h5, tmp_path / "eager", steps=2, eval_every=2, val_series=1))
    compiled = finetune(cfg(h5, tmp_path / "compiled", steps=2, eval_every=2, val_series=1, compile=True))
    losses = [[r["loss"] for r in metric_rows(tmp_path / name) if "loss" in r] for name in ("eager", "compiled")]
    assert len(losses[0]) == 2 and losses[1] == pytest.approx(losses[0], rel=1e-4)
    assert compiled.val_losses == pytest.approx(eager.val_losses, rel=1e-4)
    assert compiled.val_loss_after != compiled.val_loss_before  # the compiled run did train


def test_compile_without_a_cpp_compiler_is_one_line_and_charges_nothing(h5, tmp_path, monkeypatch):
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor.cpp, "cxx", ("/no/such/c++",))  # a new search: its cache is keyed on it
    with pytest.raises(UsageError, match="C\\+\\+ compiler.*drop --compile"):
        finetune(cfg(h5, tmp_path / "compiled", compile=True))
    assert Ledger().read().entries == [] and not (tmp_path / "compiled" / "metrics.jsonl").exists()
    dry = runner.invoke(app, ["finetune", str(h5), "--model", "tiny-qwen2", "--compile", "--dry-run"])
    assert dry.exit_code == 2 and "C++ compiler" in dry.output  # the dry run says what the run would refuse
