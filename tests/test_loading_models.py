"""load_model: zoo dispatch, unknown names, offline errors, and the hub path against a local HF cache."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import pytest

from sae_checks.errors import ConfigError, LoadError, OfflineError
from sae_checks.loading.models import load_model, official_model_name, same_model

TESTS = Path(__file__).parent


def test_unknown_name_says_where_valid_names_are():
    with pytest.raises(LoadError, match=r"'gpt2-smal'.*did you mean gpt2-small.*OFFICIAL_MODEL_NAMES"):
        load_model("gpt2-smal")


def test_official_name_and_aliases():
    assert official_model_name("gpt2-small") == "gpt2"
    assert same_model("gpt2-small", "gpt2")
    assert same_model("gpt2-small", "openai-community/gpt2")
    assert not same_model("gpt2-small", "pythia-70m")
    assert same_model("my-model", "My-Model") and same_model(None, "tiny")


def test_bad_dtype_names_the_option():
    with pytest.raises(ConfigError, match=r"dtype='float16'"):
        load_model("gpt2-small", dtype="float16")


def test_offline_not_cached_fails_at_once(empty_offline_hub):
    import transformer_lens.loading_from_pretrained  # noqa: F401  (time the check, not the import)

    start = time.perf_counter()
    with pytest.raises(OfflineError) as info:
        load_model("gpt2-small")
    assert time.perf_counter() - start < 5
    msg = str(info.value)
    assert "'gpt2-small'" in msg and "'gpt2'" in msg and "HF_HOME" in msg and "zoo" in msg


def test_zoo_is_delegated_and_put_in_eval_mode(monkeypatch, tmp_path):
    from tests.tiny import tiny_model, tiny_tokenizer

    model = tiny_model(tiny_tokenizer(tmp_path / "tok"))
    model.train()
    calls = []
    fake = types.ModuleType("sae_checks.zoo")
    fake.load_zoo_model = lambda device: calls.append(device) or model  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sae_checks.zoo", fake)
    assert load_model("zoo", device="cpu") is model
    assert calls == ["cpu"] and not model.training


HUB_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from sae_checks.errors import OfflineError
    from sae_checks.loading.models import load_model
    from sae_checks.loading.saes import load_saes

    model = load_model("gpt2-small")
    saes = load_saes("gpt2-small-res-jb", model, layers=[0])
    out = {"model_name": model.cfg.model_name, "d_model": model.cfg.d_model, "n_layers": model.cfg.n_layers,
           "n_ctx": model.cfg.n_ctx, "training": model.training, "bos": model.tokenizer.bos_token_id,
           "saes": {k: v._replace(sae=None)._asdict() for k, v in saes.items()},
           "by_regex": list(load_saes("gpt2-small-res-jb", model, ids=r"blocks\\.0\\.hook_resid_p.*"))}
    start = time.perf_counter()
    try:
        load_saes("gpt2-small-res-jb", model)  # layers=None: blocks.0 and blocks.1; blocks.1 is not cached
    except OfflineError as err:
        out["offline_error"], out["offline_seconds"] = str(err), time.perf_counter() - start
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.slow
def test_hub_path_offline_from_a_local_cache(tmp_path):
    """gpt2-small and gpt2-small-res-jb resolve through huggingface_hub's cache with HF_HUB_OFFLINE=1.
    Runs in a subprocess because huggingface_hub reads HF_HOME / HF_HUB_CACHE at import time."""
    from tests.hf_cache import JB_REPO, build_gpt2_world, offline_env

    hf_home = tmp_path / "hf"
    world = build_gpt2_world(hf_home / "hub", tmp_path / "work", sae_layers=(0,))
    env = offline_env(hf_home)
    env["PYTHONPATH"] = str(TESTS.parent)
    proc = subprocess.run([sys.executable, "-c", HUB_SCRIPT], env=env, capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    # TransformerLens built the model from the tiny config.json: a tiny gpt2
    assert (result["d_model"], result["n_layers"], result["n_ctx"]) == (world["d_model"], world["n_layers"],
                                                                         world["n_ctx"])
    assert result["model_name"] == "gpt2" and result["training"] is False and result["bos"] == 0
    assert list(result["saes"]) == ["blocks.0.hook_resid_pre"] == result["by_regex"]
    sae = result["saes"]["blocks.0.hook_resid_pre"]
    assert sae["release"] == "gpt2-small-res-jb" and sae["sae_id"] == "blocks.0.hook_resid_pre"
    assert sae["sha256"] == world["sha256"][0]
    assert str(hf_home) in sae["path"] and JB_REPO.replace("/", "--") in sae["path"]
    assert sae["neuronpedia_id"] == "gpt2-small/0-res-jb" and sae["context_size"] == 16
    assert (sae["d_in"], sae["d_sae"], sae["architecture"]) == (32, 64, "standard")
    assert "'blocks.1.hook_resid_pre'" in result["offline_error"] and "gpt2-small-res-jb" in result["offline_error"]
    assert result["offline_seconds"] < 5
