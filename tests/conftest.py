"""Fixtures shared by several test files."""

import pytest


@pytest.fixture
def empty_offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache, offline."""
    hub = tmp_path / "hf" / "hub"
    hub.mkdir(parents=True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return hub
