"""LoRA: a low-rank update on frozen linear layers, saved in the PEFT adapter format.

``y = W x + b + (alpha / r) * B A dropout(x)`` with ``A`` (r x in) initialised
kaiming-uniform (a = sqrt(5)) and ``B`` (out x r) zeros, so a fresh adapter leaves the
model unchanged. Only ``A`` and ``B`` train. The adapter folder is what PEFT writes
(``adapter_config.json`` + ``adapter_model.safetensors`` with keys
``base_model.model.<module path>.lora_A.weight``), so ``PeftModel.from_pretrained``
loads lvtime adapters and lvtime loads PEFT's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from lvtime.errors import ModelError
from lvtime.flops import DEFAULT_TARGETS

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
KEY_PREFIX = "base_model.model."


def _autocasting(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 has one function per device
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update.

    The LoRA factors are kept in float32 whatever the base dtype: with the study's
    learning rate of 1e-5, bfloat16 factors would round most updates away.
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if rank < 1:
            raise ValueError("LoRA rank must be >= 1")
        self.base_layer = base
        base.weight.requires_grad_(False)
        if base.bias is not None:
            base.bias.requires_grad_(False)
        self.rank = rank
        self.alpha = alpha
        self.scaling = alpha / rank
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        kw = dict(bias=False, device=base.weight.device, dtype=torch.float32)
        self.lora_A = nn.Linear(base.in_features, rank, **kw)
        self.lora_B = nn.Linear(rank, base.out_features, **kw)
        self.merged = False
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    @property
    def in_features(self) -> int:
        return self.base_layer.in_features

    @property
    def out_features(self) -> int:
        return self.base_layer.out_features

    @property
    def weight(self) -> torch.Tensor:  # some model code reads proj.weight.dtype
        return self.base_layer.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base_layer(x)
        if self.merged:
            return out
        # Under autocast the factors run in the autocast dtype, so x goes in as it is (a cast
        # to float32 would be undone at once: two copies of every activation); otherwise in
        # float32. The scaling is folded into the smaller of the two products.
        if not _autocasting(x.device.type):
            x = x.to(self.lora_A.weight.dtype)
        update = self.lora_B(self.lora_A(self.lora_dropout(x)) * self.scaling)
        return out + update.to(out.dtype)

    def delta_weight(self) -> torch.Tensor:
        """``(alpha / r) * B @ A`` in float32, shaped like the base weight."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight (forward then costs nothing extra)."""
        if self.merged:
            return
        w = self.base_layer.weight
        merged = w.float() + self.delta_weight()
        if not torch.isfinite(merged).all():
            raise ModelError("refusing to merge: the merged weight would not be finite")
        w.copy_(merged.to(w.dtype))
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo :meth:`merge` (exact in float32; within rounding in lower precision)."""
        if not self.merged:
            return
        w = self.base_layer.weight
        w.copy_((w.float() - self.delta_weight()).to(w.dtype))
        self.merged = False


@dataclass
class AdapterInfo:
    rank: int
    alpha: float
    dropout: float
    targets: list[str]
    modules: list[str]  # full module paths that were wrapped


def _matches(name: str, targets: tuple[str, ...] | list[str]) -> bool:
    """PEFT's rule for a list of targets: the module name equals or ends with ``.target``."""
    return any(name == t or name.endswith("." + t) for t in targets)


def inject(
    model: nn.Module,
    rank: int = 4,
    alpha: float | None = None,
    dropout: float = 0.0,
    targets: tuple[str, ...] | list[str] = DEFAULT_TARGETS,
) -> AdapterInfo:
    """Wrap every ``nn.Linear`` whose name matches ``targets`` and freeze everything else.

    ``alpha`` defaults to ``rank`` (scaling 1, as in the study).
    """
    alpha = float(rank if alpha is None else alpha)
    if lora_modules(model):
        raise ModelError("the model already has LoRA adapters")
    for p in model.parameters():
        p.requires_grad_(False)
    wrapped: list[str] = []
    for name, module in list(model.named_modules()):
        if isinstance(module, nn.Linear) and _matches(name, targets):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, LoRALinear(module, rank, alpha, dropout))
            wrapped.append(name)
    if not wrapped:
        raise ModelError(f"no linear module matches the LoRA targets {list(targets)}")
    return AdapterInfo(rank, alpha, dropout, list(targets), wrapped)


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def lora_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for m in lora_modules(model).values() for p in (m.lora_A.weight, m.lora_B.weight)]


def trainable_summary(model: nn.Module) -> dict[str, float]:
    """Trainable and total parameter counts (tied weights counted once)."""
    seen: set[int] = set()
    total = trainable = 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        trainable += p.numel() if p.requires_grad else 0
    return {"trainable": trainable, "total": total, "percent": 100.0 * trainable / max(total, 1)}


def merge(model: nn.Module) -> None:
    for m in lora_modules(model).values():
        m.merge()


def unmerge(model: nn.Module) -> None:
    for m in lora_modules(model).values():
        m.unmerge()


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """LoRA tensors under PEFT's key names."""
    out = {}
    for name, m in lora_modules(model).items():
        out[f"{KEY_PREFIX}{name}.lora_A.weight"] = m.lora_A.weight.detach().cpu().contiguous()
        out[f"{KEY_PREFIX}{name}.lora_B.weight"] = m.lora_B.weight.detach().cpu().contiguous()
    return out


def save_adapter(model: nn.Module, folder: str | Path, base_model: str | None = None) -> Path:
    """Write ``adapter_config.json`` and ``adapter_model.safetensors`` as PEFT does."""
    from safetensors.torch import save_file

    modules = lora_modules(model)
    if not modules:
        raise ModelError("the model has no LoRA adapters to save")
    first = next(iter(modules.values()))
    targets = sorted({name.rsplit(".", 1)[-1] for name in modules})
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": first.rank,
        "lora_alpha": first.alpha,
        "lora_dropout": getattr(first.lora_dropout, "p", 0.0),
        "target_modules": targets,
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "modules_to_save": None,
        "layers_to_transform": None,
        "layers_pattern": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_rslora": False,
        "use_dora": False,
        "revision": None,
    }
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    save_file(adapter_state(model), str(folder / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    return folder


def read_adapter_config(folder: str | Path) -> dict:
    path = Path(folder) / ADAPTER_CONFIG
    if not path.exists():
        raise ModelError(f"{folder}: not an adapter folder (no {ADAPTER_CONFIG})")
    if not path.is_file():  # a FIFO or /dev/zero would never end
        raise ModelError(f"{path}: not a regular file")
    try:
        config = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{path}: invalid JSON ({getattr(exc, 'msg', 'not UTF-8')})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{path}: not an adapter config (expected a JSON object)")
    if config.get("peft_type", "LORA") != "LORA":
        raise ModelError(f"{path}: a {config.get('peft_type')} adapter, lvtime loads LORA only")
    if config.get("use_dora") or config.get("use_rslora") or config.get("rank_pattern") or config.get("alpha_pattern"):
        # per-module ranks or scales would load with the wrong scale: refuse them
        raise ModelError(f"{path}: DoRA, rsLoRA and per-module ranks or alphas are not supported")
    rank, targets = config.get("r"), config.get("target_modules")
    if not isinstance(rank, int) or isinstance(rank, bool) or rank < 1:
        raise ModelError(f"{path}: 'r' must be a positive integer, not {rank!r}")
    if isinstance(targets, str):
        raise ModelError(f"{path}: regex target_modules are not supported")
    if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
        raise ModelError(f"{path}: 'target_modules' must be a non-empty list of module names")
    alpha = config.get("lora_alpha", rank)
    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha):
        raise ModelError(f"{path}: 'lora_alpha' must be a finite number, not {alpha!r}")
    return config


def read_adapter_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The adapter's tensors (CPU); a missing, truncated or corrupt file is a ModelError."""
    from safetensors.torch import load_file

    path = Path(folder) / ADAPTER_WEIGHTS
    if not path.is_file():
        raise ModelError(f"{folder}: missing {ADAPTER_WEIGHTS}")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for a corrupt file
        raise ModelError(f"{path}: corrupt or truncated ({str(exc)[:120]})") from None


def check_adapter(folder: str | Path) -> dict:
    """Read and check an adapter folder without a model (before any FLOP is reserved)."""
    config = read_adapter_config(folder)
    read_adapter_weights(folder)
    return config


def load_adapter(model: nn.Module, folder: str | Path) -> AdapterInfo:
    """Inject LoRA as the folder's config says and load its weights, checking they fit."""
    folder = Path(folder)
    config = read_adapter_config(folder)
    info = inject(
        model, config["r"], config.get("lora_alpha"), config.get("lora_dropout", 0.0), config["target_modules"]
    )
    load_weights(model, folder)
    return info


def load_weights(model: nn.Module, folder: str | Path) -> None:
    """Copy an adapter folder's tensors into a model that already has matching LoRA layers."""
    folder = Path(folder)
    state = read_adapter_weights(folder)
    expected = adapter_state(model)
    # PEFT may name the adapter in the key ("lora_A.default.weight"); accept both.
    state = {k.replace(".default.weight", ".weight"): v for k, v in state.items()}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        example = (missing or unexpected)[0]
        raise ModelError(
            f"{folder}: adapter does not match this model ({len(missing)} missing, "
            f"{len(unexpected)} unexpected tensors, e.g. {example}); was it trained on another base?"
        )
    modules = lora_modules(model)
    for key, tensor in state.items():
        name, _, part = key[len(KEY_PREFIX) :].rpartition(".lora_")
        layer = getattr(modules[name], "lora_" + part.split(".")[0])
        if layer.weight.shape != tensor.shape:
            raise ModelError(
                f"{folder}: {key} has shape {tuple(tensor.shape)}, the model needs "
                f"{tuple(layer.weight.shape)}; was it trained on another base?"
            )
        with torch.no_grad():
            layer.weight.copy_(tensor.to(layer.weight.dtype))
