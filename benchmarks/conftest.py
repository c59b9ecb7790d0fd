"""Benchmarks: heavier than the test suite, run with `make bench`; they print their figures."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
