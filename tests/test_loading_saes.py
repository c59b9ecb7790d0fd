"""load_saes: every architecture from a local folder, folders of folders, the zoo, releases offline,
and one test per validation error (each checks that the message names the culprit)."""

from __future__ import annotations

import hashlib
import json
import sys
import time
import types
import warnings

import pytest
import torch

from sae_checks.errors import CompatibilityError, LoadError, OfflineError
from sae_checks.loading.saes import LoadedSAE, load_saes
from tests.tiny import ARCHS, tiny_model, tiny_sae, tiny_sae_folder, tiny_tokenizer


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_model(tiny_tokenizer(tmp_path_factory.mktemp("tok")))  # 2 layers, d_model 16


@pytest.mark.parametrize("arch", ARCHS)
def test_every_architecture_loads_from_a_local_folder(model, tmp_path, arch):
    path = tmp_path / "blocks.1.hook_resid_pre"
    original = tiny_sae(model, 1, arch=arch, path=path, context_size=12)
    saes = load_saes(str(path), model)
    assert list(saes) == ["blocks.1.hook_resid_pre"]  # keyed by name: the folder name
    got = saes["blocks.1.hook_resid_pre"]
    assert isinstance(got, LoadedSAE) and got.name == "blocks.1.hook_resid_pre"
    assert (got.layer, got.hook_name, got.architecture) == (1, "blocks.1.hook_resid_pre", arch)
    assert (got.d_in, got.d_sae, got.context_size, got.model_name) == (16, 32, 12, "tiny")
    assert got.release is None and got.sae_id is None and got.path == str(path)
    assert got.sha256 == hashlib.sha256((path / "sae_weights.safetensors").read_bytes()).hexdigest()
    assert not got.sae.training
    x = torch.randn(5, 16)
    torch.testing.assert_close(got.sae.decode(got.sae.encode(x)), original.decode(original.encode(x)))


def test_folder_of_folders_keys_by_name_layer_from_hook_name(model, tmp_path):
    root = tiny_sae_folder(model, tmp_path / "saes", layers=[1, 0])
    (root / "blocks.0.hook_resid_pre").rename(root / "zz_layer_zero")  # layer comes from metadata
    saes = load_saes(str(root), model)
    assert list(saes) == ["zz_layer_zero", "blocks.1.hook_resid_pre"]  # forward order, not name order
    assert saes["zz_layer_zero"].layer == 0 and saes["zz_layer_zero"].path.endswith("zz_layer_zero")
    assert list(load_saes(str(root), model, layers=[1])) == ["blocks.1.hook_resid_pre"]
    assert list(load_saes(str(root), model, ids="zz_*")) == ["zz_layer_zero"]  # a glob over names
    assert list(load_saes(str(root), model, ids=r"blocks\.[0-9]+\.hook_resid_pre")) == ["blocks.1.hook_resid_pre"]


def test_requested_layer_without_sae(model, tmp_path):
    root = tiny_sae_folder(model, tmp_path / "saes", layers=[0])
    with pytest.raises(CompatibilityError, match=r"no SAE for requested layer\(s\) \[1\].*layers with an SAE: \[0\]"):
        load_saes(str(root), model, layers=[0, 1])


def test_several_saes_per_layer_and_hook_are_all_loaded(model, tmp_path):
    tiny_sae(model, 0, path=tmp_path / "a")
    tiny_sae(model, 0, path=tmp_path / "b", hook_name="blocks.0.hook_resid_post")
    tiny_sae(model, 0, path=tmp_path / "c", d_sae=64)  # a second width at the hook of "a"
    saes = load_saes(str(tmp_path), model)
    assert list(saes) == ["a", "c", "b"]  # resid_pre before resid_post
    assert [s.hook_name for s in saes.values()] == ["blocks.0.hook_resid_pre"] * 2 + ["blocks.0.hook_resid_post"]
    assert saes["c"].d_sae == 64


def test_two_sources_with_one_name_are_refused(model, tmp_path):
    tiny_sae(model, 0, path=tmp_path / "x" / "s")
    tiny_sae(model, 1, path=tmp_path / "y" / "s")
    with pytest.raises(LoadError, match=r"two SAEs are named 's'"):
        load_saes(f"{tmp_path / 'x'}, {tmp_path / 'y'}", model)
    both = load_saes(f"{tmp_path / 'x' / 's'},{tmp_path / 'y'}", model, layers=[0])
    assert list(both) == ["s"]


def test_d_in_mismatch_names_sae_and_both_widths(model, tmp_path):
    path = tmp_path / "wide"
    tiny_sae(model, 0, path=path, d_in=24)
    with pytest.raises(CompatibilityError, match=rf"SAE {path}: d_in=24 but the activation at blocks.0.hook_resid_pre "
                                                 r"of model 'tiny' has width 16"):
        load_saes(str(path), model)


def test_hook_not_in_model(model, tmp_path):
    path = tmp_path / "deep"
    tiny_sae(model, 0, path=path, hook_name="blocks.7.hook_resid_pre")
    with pytest.raises(CompatibilityError, match=r"deep: hook_name 'blocks.7.hook_resid_pre' is not a hook of model"):
        load_saes(str(path), model)


def test_hook_without_layer(model, tmp_path):
    path = tmp_path / "embed"
    tiny_sae(model, 0, path=path, hook_name="hook_embed")
    with pytest.raises(LoadError, match=r"embed: cannot tell its layer from hook_name 'hook_embed'"):
        load_saes(str(path), model)


def test_model_name_mismatch_warns_naming_both(model, tmp_path):
    path = tmp_path / "other"
    tiny_sae(model, 0, path=path, model_name="pythia-70m")
    with pytest.warns(UserWarning, match=r"trained on model 'pythia-70m' but is being checked on 'tiny'"):
        load_saes(str(path), model)
    tiny_sae(model, 0, path=tmp_path / "same", model_name="tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        load_saes(str(tmp_path / "same"), model)


def test_corrupt_weights_name_the_file(model, tmp_path):
    path = tmp_path / "bad"
    tiny_sae(model, 0, path=path)
    (path / "sae_weights.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(LoadError, match=r"cannot load .*bad[/\\]sae_weights\.safetensors"):
        load_saes(str(path), model)


def test_missing_weights_name_the_file(model, tmp_path):
    path = tmp_path / "half"
    tiny_sae(model, 0, path=path)
    (path / "sae_weights.safetensors").unlink()
    with pytest.raises(LoadError, match=r"missing file .*half[/\\]sae_weights\.safetensors"):
        load_saes(str(path), model)


def test_corrupt_cfg_names_the_file(model, tmp_path):
    path = tmp_path / "cfgbad"
    tiny_sae(model, 0, path=path)
    (path / "cfg.json").write_text("{not json")
    with pytest.raises(LoadError, match=r"cannot read .*cfgbad[/\\]cfg\.json"):
        load_saes(str(path), model)


def test_folder_without_saes(model, tmp_path):
    with pytest.raises(LoadError, match=rf"SAE folder {tmp_path}: no cfg.json"):
        load_saes(str(tmp_path), model)


def test_unknown_spec_suggests_a_release(model):
    with pytest.raises(LoadError, match=r"'gpt2-small-res-jbb'.*did you mean gpt2-small-res-jb"):
        load_saes("gpt2-small-res-jbb", model)


def test_zoo_spec_records_release_and_id(model, tmp_path, monkeypatch):
    root = tiny_sae_folder(model, tmp_path / "v1")
    fake = types.ModuleType("sae_checks.zoo")
    fake.zoo_sae_dir = lambda version: {"v1": root}[version]  # type: ignore[attr-defined]  # KeyError: unknown
    monkeypatch.setitem(sys.modules, "sae_checks.zoo", fake)
    saes = load_saes("zoo:v1", model, layers=[1])
    assert list(saes) == ["blocks.1.hook_resid_pre"]
    got = saes["blocks.1.hook_resid_pre"]
    assert got.release == "zoo:v1" and got.sae_id == "blocks.1.hook_resid_pre"
    with pytest.raises(LoadError, match=r"'zoo:v9': unknown zoo version 'v9'"):
        load_saes("zoo:v9", model)


# --- releases, offline (the cached happy path is in test_loading_models.py::test_hub_path_offline...) ---


def test_release_not_cached_offline_fails_at_once(model, empty_offline_hub):
    import sae_lens  # noqa: F401  (time the check, not the import)

    start = time.perf_counter()
    with pytest.raises(OfflineError) as info:
        load_saes("gpt2-small-res-jb", model)  # layers=None: ids blocks.0/1 exist in the release
    assert time.perf_counter() - start < 5
    msg = str(info.value)
    assert "'gpt2-small-res-jb'" in msg and "'blocks.0.hook_resid_pre'" in msg
    assert "local SAE folder" in msg and "HF_HOME" in msg


def test_release_without_the_requested_id(model, empty_offline_hub):
    with pytest.raises(CompatibilityError, match=r"'gpt2-small-res-jb' has no SAE 'blocks.20.hook_resid_pre' "
                                                 r"for requested layer 20"):
        load_saes("gpt2-small-res-jb", model, layers=[20])
    with pytest.raises(CompatibilityError, match=r"no id matches 'blocks.\{layer\}.hook_mlp_out'"):
        load_saes("gpt2-small-res-jb", model, sae_id="blocks.{layer}.hook_mlp_out")


def test_loaded_sae_is_json_ready_without_the_module(model, tmp_path):
    tiny_sae(model, 0, path=tmp_path / "s")
    record = load_saes(str(tmp_path / "s"), model)["s"]._replace(sae=None)._asdict()
    json.dumps(record)


def test_the_real_zoo_loads_without_warnings():
    """Integration with sae_checks.zoo (skipped until its files are built)."""
    from sae_checks.zoo import ZOO_DIR

    if not (ZOO_DIR / "model").exists() or not (ZOO_DIR / "saes" / "v1").exists():
        pytest.skip(f"zoo not built ({ZOO_DIR}); run python -m zoo_builder.build")
    from sae_checks.loading.models import load_model

    zoo_model = load_model("zoo")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        saes = load_saes("zoo:v1", zoo_model)
    assert [s.layer for s in saes.values()] == list(range(zoo_model.cfg.n_layers))
    assert all(s.release == "zoo:v1" and s.sha256 and s.d_in == zoo_model.cfg.d_model for s in saes.values())


@pytest.mark.parametrize("key, value, words", [
    ("hook_name", 5, "must be a string, got 5"),
    ("context_size", "256", "must be an integer or null, got '256'"),
    ("d_sae", "512", "must be an integer, got '512'"),
    ("d_in", "64", "must be an integer, got '64'"),
    ("d_sae", True, "must be an integer, got True"),
    ("d_sae", 0, "must be an integer >= 1, got 0"),
])
def test_wrong_types_in_cfg_json_name_the_file_and_key(model, tmp_path, key, value, words):
    from sae_checks.api import sae_metadata
    from sae_checks.config import RunConfig

    path = tmp_path / "typed"
    tiny_sae(model, 0, path=path)
    cfg = json.loads((path / "cfg.json").read_text())
    where = cfg if key in cfg else cfg["metadata"]
    where[key] = value
    (path / "cfg.json").write_text(json.dumps(cfg))
    shown = key if where is cfg else f"metadata.{key}"
    expected = f"{path / 'cfg.json'}: key {shown!r} {words}"
    with pytest.raises(LoadError) as info:  # before sae_lens loads it (which crashed or blamed the weights)
        load_saes(str(path), model)
    assert str(info.value).startswith(expected)
    with pytest.raises(LoadError) as info:  # the gate's planning reads the same file
        sae_metadata(RunConfig(saes=str(path)))
    assert str(info.value).startswith(expected)


def test_nonfinite_weights_warn_are_recorded_and_fail_every_check(model, tmp_path):
    import math

    import safetensors.torch

    from sae_checks.config import RunConfig
    from sae_checks.engine.run import evaluate
    from sae_checks.gate.checks import CheckSpec, judge
    from sae_checks.gate.thresholds import BaselineEntry, Baselines, Rule

    path = tmp_path / "blocks.1.hook_resid_pre"
    tiny_sae(model, 1, path=path, d_sae=32)
    weights = path / "sae_weights.safetensors"
    state = safetensors.torch.load_file(str(weights))
    state["W_dec"][3, 5] = float("nan")
    safetensors.torch.save_file(state, str(weights))
    with pytest.warns(UserWarning, match=r"SAE blocks\.1\.hook_resid_pre: non-finite values in W_dec \(first at "
                                         r"index \(3, 5\), 1 in all\); every check of this SAE will fail"):
        saes = load_saes(str(path), model)
    got = saes["blocks.1.hook_resid_pre"]
    assert got.nonfinite_params == ({"tensor": "W_dec", "index": [3, 5], "count": 1},)
    toks = torch.randint(1, model.cfg.d_vocab, (4, 16))
    toks[:, 0] = 0
    ev = evaluate(model, saes, toks, RunConfig(n_bootstrap=0, progress=False, batch_size=4))
    assert ev.provenance["saes"][0]["nonfinite_params"] == [{"tensor": "W_dec", "index": [3, 5], "count": 1}]
    assert {"sae": "blocks.1.hook_resid_pre", "layer": 1, "where": "weights", "sequence": None,
            "position": None} in ev.results["nonfinite"]
    bucket = next(iter(ev.results["per_bucket"]["blocks.1.hook_resid_pre"].values()))
    # whether a metric comes out non-finite depends on feature 3 firing; l0 never does: the gate fails it anyway
    assert bucket["l0"]["mean"] is not None and math.isfinite(bucket["l0"]["mean"])
    spec = CheckSpec(id="l0-L1-x", family="bucket", metric="l0", sae="blocks.1.hook_resid_pre", layer=1,
                     bucket=next(iter(ev.results["per_bucket"]["blocks.1.hook_resid_pre"])))
    check = judge(spec, ev.results, Rule(direction="lower", limit=None, abs_tol=1e9, rel_tol=0.0),
                  Baselines(entries={spec.id: BaselineEntry(value=bucket["l0"]["mean"])}))
    assert check.status == "fail" and check.reason == "nonfinite" and "non-finite weights" in check.message
    stays_finite = {m for m, v in bucket.items() if v["mean"] is not None}
    assert "mse" not in stays_finite and "delta_ce" not in stays_finite  # x̂ NaN where feature 3 fires
    assert {"l0", "resid_norm"} <= stays_finite  # encoder-side and input metrics: only the gate fails them
