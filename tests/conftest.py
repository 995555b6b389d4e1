"""Tests are offline: nothing may reach the Hugging Face hub, and referee's cache is a fresh folder."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _referee_cache(tmp_path_factory):
    """Each test session gets its own referee cache, so tests never see a user's cached files."""
    old = os.environ.get("REFEREE_CACHE")
    os.environ["REFEREE_CACHE"] = str(tmp_path_factory.mktemp("referee-cache"))
    yield
    if old is None:
        os.environ.pop("REFEREE_CACHE", None)
    else:
        os.environ["REFEREE_CACHE"] = old


@pytest.fixture
def shared_data():
    """../shared/data, or skip with the reason."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
