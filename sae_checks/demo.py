"""``make demo``: the main job on the embedded tiny zoo, offline, start to finish.

1. the gate (``pytest --pyargs sae_checks.gate.gate_tests``, exactly what a user runs) on zoo:v2, the
   SAEs trained at the model's full context: expected to pass;
2. the same gate on zoo:v1, trained at a 32-token context: expected to fail its context-generalization
   checks, with readable messages;
3. ``sae-checks diff`` of the two reports (v1 -> v2);
4. the figures and one self-contained HTML page per version (v2's with the diff against v1);
5. a suite: zoo:v2 with zoo:suite (a second width at layer 1, ``attn.hook_z``, ``hook_mlp_out``) through
   ``sae-checks run``, with its sweep figure (L0 against fvu and ΔCE) and HTML page.

Exits non-zero if v2 fails or v1 passes: the demo is itself a check that the gate separates them.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path


def _gate(version: str, out: Path, extra: list[str]) -> tuple[int, Path]:
    report = out / f"zoo-{version}.json"
    cmd = [sys.executable, "-m", "pytest", "--pyargs", "sae_checks.gate.gate_tests", f"--sae-saes=zoo:{version}",
           f"--sae-report={report}", "-p", "no:cacheprovider", "-q", "--tb=no", "-rfE", "--no-header",
           "-o", "console_output_style=classic", *extra]
    from sae_checks.progress import interactive

    if interactive(sys.stdout):  # the gate runs with -q (quiet): ask for progress lines on a terminal
        cmd.append("--sae-progress")
    print(f"$ {' '.join(['pytest', *cmd[3:]])}", flush=True)
    rc = subprocess.call(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    return rc, report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sae_checks.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out"), help="folder for reports, figures and HTML")
    p.add_argument("pytest_args", nargs="*", help="extra arguments for both gate runs")
    args = p.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    print("\n== 1/5  gate on zoo:v2 (SAEs trained at the full 256-token context) ==", flush=True)
    rc2, v2 = _gate("v2", out, args.pytest_args)
    print("\n== 2/5  gate on zoo:v1 (SAEs trained at a 32-token context) ==", flush=True)
    rc1, v1 = _gate("v1", out, args.pytest_args)

    from sae_checks.cli import main as cli

    print("\n== 3/5  sae-checks diff zoo-v1.json zoo-v2.json ==", flush=True)
    cli(["diff", str(v1), str(v2)])  # exit 1 = v2 regressed somewhere against v1; shown, not fatal here

    print("\n== 4/5  figures and HTML ==", flush=True)
    for version, report, base in (("v1", v1, None), ("v2", v2, v1)):
        cli(["plot", str(report), "-o", str(out / f"plots-{version}")])
        html = ["html", str(report), "-o", str(out / f"zoo-{version}.html")]
        cli(html + (["--baseline", str(base)] if base else []))

    print("\n== 5/5  a suite: zoo:v2,zoo:suite (two SAEs at blocks.1.hook_resid_pre, hook_z, mlp_out) ==",
          flush=True)
    suite = out / "zoo-suite.json"
    suite_rc = cli(["run", "--saes", "zoo:v2,zoo:suite", "--n-seqs", "8", "--buckets", "1-32,32-256", "--no-propagation",
                    "--no-progress", "--report", str(suite)])
    if suite_rc == 0:
        cli(["plot", str(suite), "-o", str(out / "plots-suite")])
        cli(["html", str(suite), "-o", str(out / "zoo-suite.html")])

    elapsed = time.perf_counter() - start
    verdict_ok = rc2 == 0 and rc1 == 1 and suite_rc == 0
    print(f"\nzoo:v2 gate exit {rc2} (expected 0: passes); zoo:v1 gate exit {rc1} (expected 1: fails)")
    print(f"reports: {v2} {v1}\nHTML: {(out / 'zoo-v2.html').resolve()}  (open it in a browser)")
    print(f"demo {'OK' if verdict_ok else 'UNEXPECTED RESULT'} in {elapsed:.0f} s")
    return 0 if verdict_ok else 1


if __name__ == "__main__":
    sys.exit(main())
