"""report.io and report.schema: canonical bytes, atomic writes, clear errors on bad files."""

from __future__ import annotations

import copy
import errno
import json
import math
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sae_checks.errors import ConfigError, ReportError
from sae_checks.io import OutputError, atomic_write_text, check_writable
from sae_checks.report import build_report, canonical_json, load_report, validate, write_report

DATA = Path(__file__).parent / "data"


@pytest.fixture
def full() -> dict:
    return load_report(DATA / "report_full.json")


@pytest.fixture
def minimal() -> dict:
    return load_report(DATA / "report_minimal.json")


def test_build_report_counts_sorts_and_versions(minimal):
    checks = [dict(minimal["checks"][0], id=f"c{i}", status=s) for i, s in
              enumerate(["fail", "pass", "warn", "pass", "improved", "new"])][::-1]
    report = build_report(provenance=minimal["provenance"], config={}, results={}, checks=checks,
                          unused_baseline=["z", "a"])
    assert report["schema_version"] == 2
    assert report["summary"] == {"pass": 2, "fail": 1, "warn": 1, "improved": 1, "new": 1}
    assert [c["id"] for c in report["checks"]] == [f"c{i}" for i in range(6)]
    assert report["unused_baseline"] == ["a", "z"]
    assert "unused_baseline" not in build_report(provenance={}, config={}, results={}, checks=[])


def test_build_report_rejects_unknown_status():
    with pytest.raises(ReportError, match=r"checks\[0\] \(id 'x'\): status 'ok'"):
        build_report(provenance={}, config={}, results={}, checks=[{"id": "x", "status": "ok"}])


def test_canonical_json_sorts_rounds_and_nulls_nonfinite():
    text = canonical_json({"b": [1.23456789, float("nan"), float("inf"), -0.0, 2], "a": {1: np.float32(0.5)},
                           "c": (np.arange(2),), "d": True})
    assert json.loads(text) == {"a": {"1": 0.5}, "b": [1.23457, None, None, 0.0, 2], "c": [[0, 1]], "d": True}
    assert text.index('"a"') < text.index('"b"') < text.index('"c"')
    assert "NaN" not in text and "Infinity" not in text
    assert '"b": [1.23457, null, null, 0.0, 2]' in text  # lists of scalars stay on one line


def test_identical_content_gives_identical_bytes(full):
    shuffled = json.loads(json.dumps(full), object_pairs_hook=lambda kv: dict(reversed(kv)))
    noisy = copy.deepcopy(full)
    noisy["results"]["per_position"]["blocks.0.hook_resid_pre"]["fvu"][5] *= 1 + 1e-9  # float noise below 6 significant digits
    assert canonical_json(shuffled) == canonical_json(full) == canonical_json(noisy)


def test_round_trip_and_stable_bytes(tmp_path, full):
    a, b = tmp_path / "a.json", tmp_path / "sub" / "b.json"
    write_report(a, full)
    write_report(b, load_report(a))
    assert load_report(a) == load_report(b) == full
    assert a.read_bytes() == b.read_bytes() == (DATA / "report_full.json").read_bytes()


def test_example_reports_are_up_to_date():
    """tests/data/*.json are what make_reports.py writes (deterministic); rerun it after changing it."""
    proc = subprocess.run([sys.executable, str(DATA / "make_reports.py"), "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_example_reports_cover_every_status_and_section(full, minimal):
    assert {c["status"] for c in full["checks"]} == {"pass", "fail", "warn", "improved", "new"}
    assert set(full["results"]) >= {"per_position", "per_bucket", "context_generalization", "propagation",
                                    "cloze", "features", "nonfinite"}
    pp = full["results"]["per_position"]["blocks.3.hook_resid_pre"]
    assert len(pp["position"]) == full["provenance"]["data"]["ctx_len"] == 256
    assert full["results"]["sweeps"] == {"blocks.1.hook_resid_pre": ["blocks.1.hook_resid_pre",
                                                                     "blocks.1.hook_resid_pre.w1024"]}
    assert {s["hook"] for s in full["provenance"]["saes"]} >= {"blocks.2.attn.hook_z", "blocks.2.hook_mlp_out"}
    assert minimal["results"] == {}


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_failed_serialization_keeps_old_file_and_leaves_no_temp(tmp_path, full):
    path = tmp_path / "report.json"
    write_report(path, full)
    before = path.read_bytes()
    bad = copy.deepcopy(full)
    bad["results"]["extra"] = {"x": [1.0, object()]}
    with pytest.raises(ReportError, match=r"report\.json: cannot write report: \$\.results\.extra\.x\[1\]: a builtins\.object"):
        write_report(path, bad)
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["report.json"]


def test_failed_rename_keeps_old_file_and_leaves_no_temp(tmp_path, full, monkeypatch):
    path = tmp_path / "report.json"
    write_report(path, full)
    before = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(src))  # names the temporary file

    monkeypatch.setattr(os, "replace", broken_replace)
    changed = copy.deepcopy(full)
    changed["config"]["seed"] = 1
    with pytest.raises(OutputError) as info:
        write_report(path, changed)
    assert str(info.value) == f"{path}: not written: {os.strerror(errno.ENOSPC)}"  # the target, not the temp file
    assert info.value.errno == errno.ENOSPC
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["report.json"]


def test_write_validates_and_names_the_path(tmp_path, minimal):
    bad = copy.deepcopy(minimal)
    bad["checks"][0]["status"] = "ok"
    del bad["provenance"]["model"]
    with pytest.raises(ReportError) as info:
        write_report(tmp_path / "r.json", bad)
    msg = str(info.value)
    assert "r.json" in msg and "2 violation(s)" in msg
    assert "$.checks[0].status: 'ok' is not one of" in msg
    assert "$.provenance: 'model' is a required property" in msg
    assert _files(tmp_path) == []


def test_nan_is_written_as_null_and_validates(tmp_path, minimal):
    report = copy.deepcopy(minimal)
    report["checks"][0]["value"] = float("nan")
    write_report(tmp_path / "r.json", report)
    assert load_report(tmp_path / "r.json")["checks"][0]["value"] is None


def test_load_invalid_json_names_file_line_and_column(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "schema_version": 1,\n  "checks": [1,,]\n}\n')
    with pytest.raises(ReportError, match=r"broken\.json:3:16: not valid JSON"):
        load_report(path)


def test_load_rejects_nan_literal(tmp_path, minimal):
    path = tmp_path / "nan.json"
    path.write_text(json.dumps(dict(minimal, config={"x": math.nan})))
    with pytest.raises(ReportError, match=r"nan\.json: not valid JSON: NaN is not a JSON value"):
        load_report(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(ReportError, match=r"nope\.json: cannot read report"):
        load_report(tmp_path / "nope.json")


@pytest.mark.parametrize("version", [3, 0, "1", None])
def test_load_unsupported_schema_version(tmp_path, minimal, version):
    path = tmp_path / "v.json"
    path.write_text(json.dumps(dict(minimal, schema_version=version)))
    with pytest.raises(ReportError, match=rf"v\.json: unsupported schema_version {version!r}; .* reads schema_version 1 and 2"):
        load_report(path)


def test_load_schema_violation_names_json_path(tmp_path, full):
    bad = copy.deepcopy(full)
    bad["results"]["per_bucket"]["blocks.2.hook_resid_pre"]["1-32"]["fvu"]["ci"] = [0.1]
    bad["results"]["per_bucket"]["blocks.2.hook_resid_pre"]["layer2"] = {}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ReportError) as info:
        load_report(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: does not match the sae-checks report schema")
    assert "$.results.per_bucket['blocks.2.hook_resid_pre']['1-32'].fvu.ci" in msg
    assert "'layer2' does not match" in msg  # bucket keys are a-b


def test_results_sections_are_optional_and_extensible(minimal):
    validate(dict(minimal, results={"my_experiment": {"anything": [1, 2]}}))
    validate(dict(minimal, unused_baseline=["fvu/layer=9/bucket=1-32"]))


def test_per_position_items_are_checked(full):
    """per_position arrays are checked outside jsonschema (speed); the errors still name the item."""
    from sae_checks.report.schema import schema_errors

    bad = copy.deepcopy(full)
    one, two = "blocks.1.hook_resid_pre", "blocks.2.hook_z"
    bad["results"]["per_position"][one]["fvu"][7] = "x"
    bad["results"]["per_position"][one]["position"][3] = -1
    bad["results"]["per_position"][two]["kl"] = 3
    assert schema_errors(bad) == [
        f"$.results.per_position['{one}'].fvu[7]: 'x' is not a number or null",
        f"$.results.per_position['{one}'].position[3]: -1 is not an integer >= 0",
        f"$.results.per_position['{two}'].kl: 3 is not of type 'array'",
    ]


def test_long_name_and_umask(tmp_path, minimal):
    # a valid 250-character name must work (the temporary name used to be longer than the target), and
    # the report gets the mode any new file gets under the umask
    path = tmp_path / ("r" * 245 + ".json")
    old = os.umask(0o022)
    try:
        write_report(path, minimal)
        page = atomic_write_text(tmp_path / "page.html", "<html></html>\n")  # html.write_html's writer
    finally:
        os.umask(old)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, "page.html"])  # no temp left
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and stat.S_IMODE(page.stat().st_mode) == 0o644
    assert load_report(path) == load_report(DATA / "report_minimal.json")


def _writable_error(path, option="--report", **kw) -> str:
    with pytest.raises(ConfigError) as info:
        check_writable(path, option, **kw)
    msg = str(info.value)
    assert msg.startswith(f"{option}={str(path)!r}: ") and "\n" not in msg
    return msg


def test_check_writable_names_option_and_path(tmp_path):
    assert check_writable(tmp_path / "r.json", "--report") == tmp_path / "r.json"
    assert check_writable(tmp_path / "new-folder", "-o", directory=True) == tmp_path / "new-folder"
    assert "does not exist" in _writable_error(tmp_path / "missing" / "r.json")
    assert "mkdir -p" in _writable_error(tmp_path / "missing" / "r.json")
    assert "is a directory" in _writable_error(tmp_path)
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in _writable_error(tmp_path / "file" / "r.json")
    assert "is not a directory" in _writable_error(tmp_path / "file", "-o", directory=True)
    assert "longer than this file system allows" in _writable_error(tmp_path / ("r" * 300 + ".json"))
    check_writable(tmp_path / ("r" * 250), "--report")  # within NAME_MAX


def test_check_writable_read_only_directory(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.geteuid() != 0:  # root may write anywhere: simulate below instead
            assert "is not writable" in _writable_error(ro / "r.json")
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == ro else real(p, mode))
        assert "is not writable" in _writable_error(ro / "r.json")
        assert "is not writable" in _writable_error(ro, "-o", directory=True)
    finally:
        ro.chmod(0o755)


WHERE = ("logits_clean", "activations", "features", "reconstruction", "logits_spliced")
_index = st.none() | st.integers(min_value=0, max_value=10**6)
_nonfinite_entry = st.fixed_dictionaries(
    {"layer": _index, "where": st.sampled_from(WHERE), "sequence": _index, "position": _index},
    optional={"sae": st.none() | st.text(min_size=1, max_size=40)},  # SAE names (the re-keyed engine)
)
_value = st.none() | st.floats(allow_nan=True, allow_infinity=True)


@settings(max_examples=60, deadline=None)
@given(nonfinite=st.lists(_nonfinite_entry, max_size=6), value=_value, ci=st.none() | st.tuples(_value, _value),
       sae=st.none() | st.text(min_size=1, max_size=40))
def test_schema_accepts_what_the_engine_emits(nonfinite, value, ci, sae):
    # a nonfinite entry from non-finite clean logits has "layer": null (and "sae": null): the report must
    # still validate, or it is lost exactly when it matters
    minimal = load_report(DATA / "report_minimal.json")
    check = dict(minimal["checks"][0], value=value, ci=list(ci) if ci else None, status="fail")
    if sae is not None:
        check["sae"] = sae
    report = build_report(provenance=minimal["provenance"], config={}, results={"nonfinite": nonfinite},
                          checks=[check])
    validate(json.loads(canonical_json(report)), source="generated")


def test_nonfinite_clean_logits_entry_is_written(tmp_path, minimal):
    report = copy.deepcopy(minimal)
    report["results"]["nonfinite"] = [
        {"layer": None, "sae": None, "where": "logits_clean", "sequence": 0, "position": 3},
        {"layer": 0, "sae": "blocks.0.hook_resid_pre", "where": "reconstruction", "sequence": 1, "position": 2},
    ]
    write_report(tmp_path / "r.json", report)
    assert load_report(tmp_path / "r.json")["results"]["nonfinite"][0]["layer"] is None
