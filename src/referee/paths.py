"""Where referee keeps what it fetches or computes once: wheels, converted models, embeddings."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def cache_dir(*parts: str) -> Path:
    """`$REFEREE_CACHE` if set, else the user's cache dir; created on first use."""
    root = Path(os.environ.get("REFEREE_CACHE") or platformdirs.user_cache_dir("referee"))
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
