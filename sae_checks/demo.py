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

ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


class _Job:
    """A command run in the background with its output kept, shown whole when it is collected: the two
    gates and the suite run side by side (one torch thread each, so they share the cores instead of
    fighting over them), their outputs in the demo's order."""

    def __init__(self, shown: str, cmd: list[str], threads: int = 1) -> None:
        self.shown = shown
        env = {**os.environ, **ENV, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def collect(self) -> int:
        output, _ = self.proc.communicate()
        print(f"$ {self.shown}\n{output}", end="", flush=True)
        return self.proc.returncode


def _gate(version: str, out: Path, extra: list[str]) -> tuple[_Job, Path]:
    report = out / f"zoo-{version}.json"
    args = ["--pyargs", "sae_checks.gate.gate_tests", f"--sae-saes=zoo:{version}", f"--sae-report={report}",
            "-p", "no:cacheprovider", "-q", "--tb=no", "-rfE", "--no-header", "-o", "console_output_style=classic",
            *extra]
    return _Job(" ".join(["pytest", *args]), [sys.executable, "-m", "pytest", *args]), report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m sae_checks.demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("out"), help="folder for reports, figures and HTML")
    p.add_argument("pytest_args", nargs="*", help="extra arguments for both gate runs")
    args = p.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    print("(the two gates run side by side; each one's output is shown when it ends)", flush=True)
    job2, v2 = _gate("v2", out, args.pytest_args)
    job1, v1 = _gate("v1", out, args.pytest_args)
    print("\n== 1/5  gate on zoo:v2 (SAEs trained at the full 256-token context) ==", flush=True)
    rc2 = job2.collect()
    print("\n== 2/5  gate on zoo:v1 (SAEs trained at a 32-token context) ==", flush=True)
    rc1 = job1.collect()

    suite = out / "zoo-suite.json"
    suite_args = ["run", "--saes", "zoo:v2,zoo:suite", "--n-seqs", "8", "--buckets", "1-32,32-256", "--no-propagation",
                  "--no-progress", "--report", str(suite)]
    suite_job = _Job(" ".join(["sae-checks", *suite_args]), [sys.executable, "-m", "sae_checks.cli", *suite_args],
                     threads=2)  # beside the drawing (one core): two threads, the sums summed as before

    from sae_checks.cli import main as cli

    print("\n== 3/5  sae-checks diff zoo-v1.json zoo-v2.json ==", flush=True)
    cli(["diff", str(v1), str(v2)])  # exit 1 = v2 regressed somewhere against v1; shown, not fatal here

    print("\n== 4/5  figures and HTML (each figure drawn once, for its folder and the page) ==", flush=True)
    for version, report, base in (("v1", v1, None), ("v2", v2, v1)):
        html = ["html", str(report), "-o", str(out / f"zoo-{version}.html"), "--figures", str(out / f"plots-{version}")]
        cli(html + (["--baseline", str(base)] if base else []))

    print("\n== 5/5  a suite: zoo:v2,zoo:suite (two SAEs at blocks.1.hook_resid_pre, hook_z, mlp_out) ==",
          flush=True)
    suite_rc = suite_job.collect()
    if suite_rc == 0:
        cli(["html", str(suite), "-o", str(out / "zoo-suite.html"), "--figures", str(out / "plots-suite")])

    elapsed = time.perf_counter() - start
    verdict_ok = rc2 == 0 and rc1 == 1 and suite_rc == 0
    print(f"\nzoo:v2 gate exit {rc2} (expected 0: passes); zoo:v1 gate exit {rc1} (expected 1: fails)")
    print(f"reports: {v2} {v1}\nHTML: {(out / 'zoo-v2.html').resolve()}  (open it in a browser)")
    print(f"demo {'OK' if verdict_ok else 'UNEXPECTED RESULT'} in {elapsed:.0f} s")
    return 0 if verdict_ok else 1


if __name__ == "__main__":
    sys.exit(main())
