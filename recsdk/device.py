"""Where deep plugins run: CUDA when torch sees a GPU, else the CPU."""

from __future__ import annotations

import functools


@functools.cache
def resolve_device(setting: str = "auto") -> str:
    """``auto`` picks ``cuda`` when torch sees a GPU; anything else is used as given.

    Cached, and called only when a plugin asks: importing torch takes seconds, which
    a shop running only light plugins should not pay at every start.
    """
    if setting != "auto":
        return setting
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"
