"""``sae-checks run | diff | plot | html | zoo``: thin shells over the library.

Every ``run`` option maps onto a RunConfig field (dashes for underscores); ``[tool.sae-checks]`` in the
current directory's pyproject.toml supplies defaults, command-line flags win. Bad input exits with
status 4 and a one-line message naming the option, file or key at fault; the exit codes follow pytest's
(``EXIT_CODES``, shown by ``sae-checks --help``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sae_checks.errors import ConfigError, SaeChecksError

# Exit codes, with pytest's meanings (pytest.ExitCode), so CI treats the gate and the CLI alike.
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_INTERNAL, EXIT_USAGE, EXIT_NOTHING = 0, 1, 2, 3, 4, 5
EXIT_CODES = """\
exit codes (pytest's meanings):
  0  all checks passed; diff: no regression
  1  a check failed; diff: a result regressed
  2  interrupted (Ctrl-C)
  3  internal error: a bug in sae-checks (rerun with SAE_CHECKS_DEBUG=1 for the traceback)
  4  usage or input error: a bad option, file, key or value (one line names it)
  5  nothing selected (e.g. --layers with no layer)
"""
DEBUG_ENV = "SAE_CHECKS_DEBUG"  # set to 1: an internal error prints its traceback


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors exiting 4 (argparse's own 2 means "interrupted" in pytest's table)."""

    def error(self, message: str) -> Any:  # NoReturn in argparse
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def _buckets(text: str) -> tuple[tuple[int, int], ...]:
    """``1-32,32-256`` -> ((1, 32), (32, 256))."""
    try:
        return tuple((int(a), int(b)) for a, b in (part.split("-") for part in _names(text)))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected buckets like 1-128,128-1024, got {text!r}") from err


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The RunConfig options shared by ``run`` and the demo (defaults None: the config's own apply)."""
    g = p.add_argument_group("run configuration (RunConfig fields; see sae_checks/config.py)")
    g.add_argument("--model", help="TransformerLens pretrained name (gpt2-small) or 'zoo' (default)")
    g.add_argument("--saes", help="sae_lens release, local SAE folder(s), or zoo:v1 / zoo:v2 (default zoo:v2)")
    g.add_argument("--sae-id", help="id template inside a release (default blocks.{layer}.hook_resid_pre)")
    g.add_argument("--layers", type=_ints, help="comma-separated layers (default: every layer with an SAE)")
    g.add_argument("--data", help="HF dataset id, local .jsonl/.txt/.parquet, or 'zoo' (default)")
    g.add_argument("--data-split", help="split of a HF dataset (default train)")
    g.add_argument("--data-config", help="config name of a HF dataset")
    g.add_argument("--text-field", help="field holding the text (default text)")
    g.add_argument("--n-seqs", type=int, help="sequences to evaluate (default: about 100k tokens, ceil(100000 / ctx-len); 64 on the zoo)")
    g.add_argument("--ctx-len", type=int, help="tokens per sequence incl. BOS (default: model n_ctx)")
    g.add_argument("--seed", type=int, help="data sampling and bootstrap seed (default 0)")
    g.add_argument("--device", help="cpu, cuda, cuda:N (default: cuda when available)")
    g.add_argument("--dtype", choices=["float32", "bfloat16"], help="bfloat16 = autocast, CUDA only")
    g.add_argument("--batch-size", type=int, help="sequences per forward pass (default 8; halved on OOM)")
    g.add_argument("--buckets", type=_buckets, help="position buckets, e.g. 1-128,128-1024")
    g.add_argument("--no-fast-attention", dest="fast_attention", action="store_const", const=False,
                   help="TransformerLens' own attention instead of the fused kernel (same function, slower)")
    g.add_argument("--splice-bos", action="store_const", const=True, help="also splice the BOS position")
    g.add_argument("--no-zero-ablation", dest="zero_ablation", action="store_const", const=False,
                   help="skip the zero-ablation pass (no ce_loss_score)")
    g.add_argument("--no-propagation", dest="propagation", action="store_const", const=False,
                   help="skip the error-propagation matrix")
    g.add_argument("--n-bootstrap", type=int, help="bootstrap resamples per bucket CI (default 1000)")
    g.add_argument("--tasks", type=_names, help="cloze tasks: lambada,cbt (on the zoo, lambada = zoo cloze set)")
    g.add_argument("--n-prompts", type=int, help="prompts per task (default 1000)")
    g.add_argument("--no-progress", dest="progress", action="store_const", const=False, help="no progress bars")


def pyproject_defaults(path: Path = Path("pyproject.toml")) -> dict[str, Any]:
    """``[tool.sae-checks]`` of ``path`` (empty when absent)."""
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(str(path), "[tool.sae-checks]", f"invalid TOML: {err}") from err
    return dict(data.get("tool", {}).get("sae-checks", {}))


def config_from_args(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> Any:
    """RunConfig from ``[tool.sae-checks]`` defaults overridden by the flags that were given."""
    from sae_checks.config import RunConfig

    fields = set(RunConfig.__dataclass_fields__)
    # keys of the pyproject table that belong to the gate, not the run
    from sae_checks.gate import ALIASES

    gate_keys = {"thresholds", "baseline", "report", "update_baseline"}
    values = {}
    for key, value in (defaults or {}).items():
        name = key.replace("-", "_")
        if name not in gate_keys:
            values[ALIASES.get(name, key)] = value  # the pytest option names (ctx, id) work here too
    values.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    return RunConfig.from_dict(values, source="[tool.sae-checks]")


def cmd_run(args: argparse.Namespace) -> int:
    from sae_checks.api import run
    from sae_checks.report.io import build_report, check_writable, write_report
    from sae_checks.summary import print_summary

    config = config_from_args(args, pyproject_defaults())
    if config.layers == ():
        print("sae-checks: nothing selected: --layers names no layer", file=sys.stderr)
        return EXIT_NOTHING
    if args.report:
        check_writable(args.report, "--report")  # before the model loads, not after the run
    evaluation = run(config)
    report = build_report(provenance=evaluation.provenance, config=config.to_dict(),
                          results=evaluation.results, checks=[])
    if args.report:
        write_report(args.report, report)
        print(f"report: {args.report}")
    print_summary(report)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from sae_checks.report.diff import diff_exit_code, diff_reports, format_diff
    from sae_checks.report.io import load_report

    diff = diff_reports(load_report(args.old), load_report(args.new), force=args.force,
                        labels=(str(args.old), str(args.new)))
    print(format_diff(diff, args.format))
    return diff_exit_code(diff)


def cmd_plot(args: argparse.Namespace) -> int:
    from sae_checks.report.io import check_writable, load_report
    from sae_checks.report.plots import make_diff_plots, make_plots

    check_writable(args.out, "--out", directory=True)
    report = load_report(args.report)
    result = make_plots(report, Path(args.out))
    if args.baseline:
        make_diff_plots(load_report(args.baseline), report, Path(args.out))
    for path in result.paths:
        print(path)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_html(args: argparse.Namespace) -> int:
    from sae_checks.report.html import write_html
    from sae_checks.report.io import check_writable, load_report

    check_writable(args.out, "--out")
    baseline = load_report(args.baseline) if args.baseline else None
    write_html(load_report(args.report), Path(args.out), baseline=baseline)
    print(args.out)
    return 0


def cmd_zoo(args: argparse.Namespace) -> int:
    from sae_checks.zoo import build

    rest = list(args.rest)
    if not rest or rest[0] != "build":
        print("usage: sae-checks zoo build [--out DIR] [--quick]", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(build.main(rest[1:]) or 0)
    except SystemExit as exc:  # its argparse: 2 on a usage error, which is 4 here
        return EXIT_USAGE if exc.code == 2 else exc.code if isinstance(exc.code, int) else EXIT_USAGE


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sae-checks", description=__doc__.splitlines()[0], epilog=EXIT_CODES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="evaluate SAEs (the zoo when nothing is named) and write the JSON report")
    add_run_options(r)
    r.add_argument("--report", type=Path, help="write the JSON report here (atomically)")
    r.set_defaults(func=cmd_run)
    d = sub.add_parser("diff", help="compare two reports; exit 1 on a regression")
    d.add_argument("old", type=Path)
    d.add_argument("new", type=Path)
    d.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    d.add_argument("--force", action="store_true", help="compare reports of different models/configs anyway")
    d.set_defaults(func=cmd_diff)
    pl = sub.add_parser("plot", help="PNG figures from a report")
    pl.add_argument("report", type=Path)
    pl.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    pl.add_argument("--baseline", type=Path, help="an older report: also draw the per-bucket deltas")
    pl.set_defaults(func=cmd_plot)
    h = sub.add_parser("html", help="one self-contained HTML page from a report")
    h.add_argument("report", type=Path)
    h.add_argument("--baseline", type=Path, help="an older report to diff against")
    h.add_argument("-o", "--out", type=Path, required=True, help="output .html file")
    h.set_defaults(func=cmd_html)
    z = sub.add_parser("zoo", help="the embedded tiny zoo: `sae-checks zoo build [--out DIR]`")
    z.add_argument("rest", nargs=argparse.REMAINDER)
    z.set_defaults(func=cmd_zoo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (``EXIT_CODES``)."""
    try:
        args = parser().parse_args(argv)
        return int(args.func(args))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (4)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    except KeyboardInterrupt:
        print("sae-checks: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SaeChecksError as err:
        print(f"sae-checks: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # a bug: one line, the traceback on request
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        first = (str(err).strip().splitlines() or [""])[0]
        print(f"sae-checks: internal error: {type(err).__name__}: {first} (rerun with {DEBUG_ENV}=1 for the "
              "traceback, and please report it)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
