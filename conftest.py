"""Test-suite set-up: nothing may reach the Hugging Face hub (no network here; without these
variables a hub call hangs ~25 s in retries), and matplotlib never needs a display. Tests marked
``realscale`` (a gpt2-small-sized world, minutes) run only with ``--realscale`` (``make realscale``)."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

pytest_plugins = ["pytester"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--realscale", action="store_true", default=False,
                     help="also run the tests marked realscale (gpt2-small-sized world; make realscale)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--realscale"):
        return
    skip = pytest.mark.skip(reason="realscale: gpt2-small-sized, minutes; run with --realscale (make realscale)")
    for item in items:
        if item.get_closest_marker("realscale") is not None:
            item.add_marker(skip)
