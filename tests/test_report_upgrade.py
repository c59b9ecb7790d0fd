"""report.upgrade: schema_version 1 reports (keyed by layer) read as version 2 (keyed by SAE name)."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

from sae_checks.report.io import canonical_json, read_report, write_report
from sae_checks.report.upgrade import sae_name, slug, upgrade_check_id, upgrade_report

DATA = Path(__file__).parent / "data"


def _make_reports():
    spec = importlib.util.spec_from_file_location("make_reports", DATA / "make_reports.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_v1_example_upgrades_to_the_v2_report_of_the_same_run(tmp_path):
    upgraded = read_report(DATA / "report_v1.json")
    expected = json.loads(canonical_json(_make_reports().v2_of_v1()))
    assert json.loads(canonical_json(upgraded)) == expected
    assert upgraded["schema_version"] == 2
    write_report(tmp_path / "v2.json", upgraded)  # valid in the current schema
    assert read_report(tmp_path / "v2.json") == read_report(DATA / "report_v1.json")


def test_upgrade_details():
    v1 = json.loads((DATA / "report_v1.json").read_text())
    before = copy.deepcopy(v1)
    up = upgrade_report(v1)
    assert v1 == before  # the argument is not modified
    res = up["results"]
    assert sorted(res["per_bucket"]) == [f"blocks.{L}.hook_resid_pre" for L in range(4)]
    assert "per_sae" in res["cloze"]["lambada"] and "per_layer" not in res["cloze"]["lambada"]
    assert res["propagation"]["saes"] == [f"blocks.{L}.hook_resid_pre" for L in range(4)]
    assert res["saes"]["blocks.2.hook_resid_pre"]["layer"] == 2 and res["sweeps"] == {}
    assert [s["name"] for s in up["provenance"]["saes"]] == [f"blocks.{L}.hook_resid_pre" for L in range(4)]
    ids = {c["id"]: c for c in up["checks"]}
    c = ids["fvu-L3-pos1_32-blocks.3.hook_resid_pre"]
    assert (c["sae"], c["hook"], c["layer"], c["bucket"]) == ("blocks.3.hook_resid_pre", "blocks.3.hook_resid_pre",
                                                             3, "1-32")
    p = ids["propagation-mse-L1-blocks.1.hook_resid_pre-to-L3-blocks.3.hook_resid_pre"]
    assert (p["sae"], p["upstream_sae"], p["upstream"]) == ("blocks.3.hook_resid_pre", "blocks.1.hook_resid_pre", 1)
    assert "context_ratio-l0-L0-blocks.0.hook_resid_pre" in ids
    assert "cloze-lambada-acc_first_token-L2-blocks.2.hook_resid_pre" in ids


@pytest.mark.parametrize(("entry", "name"), [
    ({"layer": 3, "id": "layer_3/width_16k/average_l0_71", "path": "/x/y"}, "layer_3/width_16k/average_l0_71"),
    ({"layer": 3, "id": "", "path": "/saes/run7/blocks.3.hook_resid_pre/"}, "blocks.3.hook_resid_pre"),
    ({"layer": 3, "id": None, "path": "C:\\saes\\wide"}, "wide"),
    ({"layer": 3, "id": None, "path": ""}, "layer3"),
    ({"layer": 3}, "layer3"),
])
def test_sae_name(entry, name):
    assert sae_name(entry) == name


def test_check_ids_and_slugs():
    names = {"3": ["layer_3/width_16k/average_l0_71"], "1": ["a"], "5": ["x", "y"]}
    gemma = "layer_3_width_16k_average_l0_71"
    assert slug("layer_3/width 16k") == "layer_3_width_16k"
    assert upgrade_check_id("fvu/layer=3/bucket=1-32", names) == (f"fvu-L3-pos1_32-{gemma}",
                                                                 {"sae": "layer_3/width_16k/average_l0_71"})
    assert upgrade_check_id("context_ratio/fvu/layer=3", names)[0] == f"context_ratio-fvu-L3-{gemma}"
    assert upgrade_check_id("cloze/lambada/acc_word/layer=3", names)[0] == f"cloze-lambada-acc_word-L3-{gemma}"
    assert upgrade_check_id("propagation/mse/up=1/down=3", names)[0] == f"propagation-mse-L1-a-to-L3-{gemma}"
    assert upgrade_check_id("fvu/layer=5/bucket=1-32", names) == ("fvu/layer=5/bucket=1-32", {})  # two SAEs
    assert upgrade_check_id("fvu/layer=9/bucket=1-32", names) == ("fvu/layer=9/bucket=1-32", {})  # none
    assert upgrade_check_id("fvu-L3-pos1_32-x", names) == ("fvu-L3-pos1_32-x", {})  # already new


def test_nonfinite_and_unnamed_saes_get_layer_names():
    v1 = json.loads((DATA / "report_v1.json").read_text())
    for entry in v1["provenance"]["saes"]:
        entry["id"] = None
    v1["results"]["nonfinite"] = [{"layer": 2, "where": "sae_out", "sequence": 1, "position": 40}]
    up = upgrade_report(v1)
    assert sorted(up["results"]["per_position"]) == ["layer0", "layer1", "layer2", "layer3"]
    assert up["results"]["nonfinite"][0]["sae"] == "layer2"
    assert "fvu-L2-pos1_32-layer2" in {c["id"] for c in up["checks"]}


def test_v2_is_returned_unchanged():
    full = read_report(DATA / "report_full.json")
    assert upgrade_report(full) == full and upgrade_report(full) is not full
