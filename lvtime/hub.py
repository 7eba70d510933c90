"""Talking to the Hugging Face hub only when it can answer.

Offline, ``from_pretrained`` retries for ~25 s before failing with a long traceback.
lvtime first tries the local cache, then checks in two seconds whether the hub is
reachable at all, and otherwise fails fast with a message that names the way forward.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
from collections.abc import Callable
from functools import cache
from typing import TypeVar

T = TypeVar("T")


@cache
def hub_reachable(timeout: float = 2.0) -> bool:
    """True when the hub's host resolves and accepts a TCP connection."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    endpoint = urllib.parse.urlsplit(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    if not endpoint.hostname:
        return False
    try:
        port = endpoint.port or (80 if endpoint.scheme == "http" else 443)
    except ValueError:  # a port that is not a number
        return False
    try:
        with socket.create_connection((endpoint.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def from_cache_or_hub(load: Callable[..., T], source: str) -> T:
    """``load(source, local_files_only=True)``, then the hub when it is reachable.

    Raises ``ConnectionError`` when the source is in neither place; other loading
    errors propagate unchanged.
    """
    try:
        return load(source, local_files_only=True)
    except OSError:
        if not hub_reachable():
            raise ConnectionError(f"{source!r} is not in the local cache and the hub is unreachable") from None
    return load(source)
