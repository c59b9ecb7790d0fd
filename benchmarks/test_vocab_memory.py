"""Memory that does not scale with the vocabulary (issue 10.2): the engine on a gpt2-small-shaped model
(vocabulary 50257, context 1024, one SAE of width 24576; benchmarks/gpt2_shape.py) at batch 2 and batch 8
with a fixed chunk of 256 tokens, each in a fresh process. Printed and asserted with a margin: peak RSS
at batch 8 within 1.5x of batch 2, and what batch 8 adds over the loaded model stays below one batch's
float32 logits (8 x 1024 x 50257 x 4 B = 1.6 GB), which the engine before token chunks held several of.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PEAKS: dict[int, dict[str, float]] = {}
LOGITS_MIB = 8 * 1024 * 50257 * 4 / 2**20


def _measure(batch: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpt2_shape", str(batch), "256"], capture_output=True,
                         text=True, timeout=1800, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("batch", [2, 8])
def test_peak_memory_at_a_50k_vocabulary(benchmark, batch):
    benchmark.pedantic(lambda: PEAKS.__setitem__(batch, _measure(batch)), rounds=1, iterations=1)
    m = PEAKS[batch]
    print(f"\ngpt2-shaped, batch {batch}, chunk 256: peak RSS {m['peak_rss_mib']:.0f} MiB "
          f"(model + SAE loaded: {m['rss_loaded_mib']:.0f} MiB), {m['seconds']:.1f} s")
    if len(PEAKS) == 2:
        ratio = PEAKS[8]["peak_rss_mib"] / PEAKS[2]["peak_rss_mib"]
        added = PEAKS[8]["peak_rss_mib"] - PEAKS[8]["rss_loaded_mib"]
        print(f"batch 8 / batch 2 peak: {ratio:.2f}x; batch 8 adds {added:.0f} MiB "
              f"(one batch of logits: {LOGITS_MIB:.0f} MiB)")
        assert ratio <= 1.5
        assert added < LOGITS_MIB
