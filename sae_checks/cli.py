"""``sae-checks run | gate | diff | merge | plot | html | zoo``: thin shells over the library.

Every ``run`` option maps onto a RunConfig field (dashes for underscores); ``[tool.sae-checks]`` in the
current directory's pyproject.toml supplies defaults, command-line flags win. Bad input exits with
status 4 and a one-line message naming the option, file or key at fault; the exit codes follow pytest's
(``EXIT_CODES``, shown by ``sae-checks --help``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sae_checks.errors import SaeChecksError

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


def add_run_options(p: argparse.ArgumentParser) -> None:
    """The RunConfig options (``sae_checks.options.RUN``; defaults None: the config's own apply)."""
    from sae_checks.options import RUN, add_argparse

    add_argparse(p.add_argument_group("run configuration (RunConfig fields; the same options as the pytest "
                                      "plugin's --sae-* and [tool.sae-checks])"), RUN)


def pyproject_defaults(path: Path = Path("pyproject.toml")) -> dict[str, Any]:
    """``[tool.sae-checks]`` of ``path`` (empty when absent; ``config.read_pyproject``)."""
    from sae_checks.config import read_pyproject

    return read_pyproject(path)


def config_from_args(args: argparse.Namespace, defaults: dict[str, Any] | None = None) -> Any:
    """RunConfig from ``[tool.sae-checks]`` defaults overridden by the flags that were given."""
    from sae_checks.config import ALIASES, GATE_KEYS, RunConfig

    fields = set(RunConfig.__dataclass_fields__)
    values = {}
    for key, value in (defaults or {}).items():
        name = key.replace("-", "_")
        if name not in GATE_KEYS:  # keys of the pyproject table that belong to the gate, not the run
            values[ALIASES.get(name, key)] = value  # the pytest option names (ctx, id) work here too
    values.update({k: v for k, v in vars(args).items() if k in fields and v is not None})
    return RunConfig.from_dict(values, source="[tool.sae-checks]")


def cmd_run(args: argparse.Namespace) -> int:
    """Everything that can be refused is refused before the model loads (exit 4): the report path (and
    another run writing it), the tasks' data offline, a local text file too short. A report that cannot
    be written after the run is not lost: the summary is printed and the report saved elsewhere."""
    from sae_checks.api import run
    from sae_checks.io import OutputError, OutputLock, check_writable
    from sae_checks.loading.data import check_sequences_available, check_tasks_available
    from sae_checks.report.io import build_report, write_failed, write_report
    from sae_checks.summary import print_summary

    config = config_from_args(args, pyproject_defaults())
    if config.layers == ():
        print("sae-checks: nothing selected: --layers names no layer", file=sys.stderr)
        return EXIT_NOTHING
    lock = OutputLock(check_writable(args.report, "--report"), "--report").acquire() if args.report else None
    try:
        check_tasks_available(config)
        check_sequences_available(config)
        evaluation = run(config)
        report = build_report(provenance=evaluation.provenance, config=config.to_dict(),
                              results=evaluation.results, checks=[])
        if args.report:
            try:
                write_report(args.report, report)
            except OutputError as exc:
                print_summary(report)
                print(f"sae-checks: error: {write_failed('report', exc, report)}", file=sys.stderr)
                return EXIT_USAGE
            print(f"report: {args.report}")
        print_summary(report)
    finally:
        if lock is not None:
            lock.release()
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from sae_checks.report.diff import diff_exit_code, diff_reports, format_diff
    from sae_checks.report.io import load_report

    diff = diff_reports(load_report(args.old), load_report(args.new), force=args.force,
                        allow_different=args.allow_different, exclude=tuple(args.exclude),
                        labels=(str(args.old), str(args.new)))
    print(format_diff(diff, args.format))
    return diff_exit_code(diff)


def cmd_plot(args: argparse.Namespace) -> int:
    from sae_checks.io import check_writable
    from sae_checks.report.io import load_report
    from sae_checks.report.plots import make_diff_plots, make_plots

    check_writable(args.out, "--out", directory=True)
    report = load_report(args.report)
    baseline = load_report(args.baseline) if args.baseline else None
    result = make_plots(report, Path(args.out), baseline=baseline)
    if baseline is not None:
        make_diff_plots(baseline, report, Path(args.out))
    for path in result.paths:
        print(path)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    return 0


def cmd_html(args: argparse.Namespace) -> int:
    from sae_checks.io import check_writable
    from sae_checks.report.html import write_html
    from sae_checks.report.io import load_report

    check_writable(args.out, "--out")
    if args.figures is not None:
        check_writable(args.figures, "--figures", directory=True)
    baseline = load_report(args.baseline) if args.baseline else None
    write_html(load_report(args.report), Path(args.out), baseline=baseline, figures=args.figures)
    print(args.out)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from sae_checks.io import OutputLock, check_writable
    from sae_checks.report.io import load_report, write_report
    from sae_checks.report.merge import merge_reports
    from sae_checks.summary import print_summary

    check_writable(args.out, "--out")
    report = merge_reports([load_report(p) for p in args.parts], labels=[str(p) for p in args.parts])
    with OutputLock(args.out, "--out"):
        write_report(args.out, report)
    print(f"report: {args.out} (merged from {len(args.parts)} parts)")
    print_summary(report)
    from sae_checks.status import FAILING

    failed = any(report.get("summary", {}).get(s, 0) for s in FAILING)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_gate(args: argparse.Namespace) -> int:
    """The shipped gate module under pytest, with the same options, report and exit codes."""
    import pytest

    from sae_checks.options import GATE, RUN, as_pytest_args

    values = {k: v for k, v in vars(args).items() if v is not None}
    argv = ["--pyargs", "sae_checks.gate.gate_tests", "-p", "no:cacheprovider", *as_pytest_args(values, RUN + GATE)]
    rest = list(args.pytest_args)
    argv += rest[1:] if rest[:1] == ["--"] else rest
    return int(pytest.main(argv))


def cmd_zoo(args: argparse.Namespace) -> int:
    rest = list(args.rest)
    if not rest or rest[0] != "build":
        print("usage: sae-checks zoo build [--out DIR] [--quick]", file=sys.stderr)
        return EXIT_USAGE
    try:  # the builder sits outside the package (zoo_builder/ in the source repository), above it
        build = importlib.import_module("zoo_builder.build")
    except ImportError:
        print("sae-checks zoo build: the zoo builder is not installed (it lives in the source repository); "
              "run `python -m zoo_builder.build` from a checkout", file=sys.stderr)
        return EXIT_USAGE
    try:
        return int(build.main(rest[1:]) or 0)
    except SystemExit as exc:  # its argparse: 2 on a usage error, which is 4 here
        return EXIT_USAGE if exc.code == 2 else exc.code if isinstance(exc.code, int) else EXIT_USAGE


def parser() -> argparse.ArgumentParser:
    from sae_checks.options import GATE, add_argparse
    from sae_checks.version import __version__

    p = _Parser(prog="sae-checks", description=__doc__.splitlines()[0], epilog=EXIT_CODES,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"sae-checks {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    gt = sub.add_parser("gate", help="run the gate (the same as `pytest --pyargs sae_checks.gate.gate_tests`); "
                        "pytest arguments after --", epilog=EXIT_CODES,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_options(gt)
    add_argparse(gt.add_argument_group("gate"), GATE)
    gt.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest arguments (-k, -n 2 --dist loadgroup, -q)")
    gt.set_defaults(func=cmd_gate)
    r = sub.add_parser("run", help="evaluate SAEs (the zoo when nothing is named) and write the JSON report")
    add_run_options(r)
    r.add_argument("--report", type=Path, help="write the JSON report here (atomically)")
    r.set_defaults(func=cmd_run)
    d = sub.add_parser("diff", help="compare two reports; exit 1 on a regression")
    d.add_argument("old", type=Path)
    d.add_argument("new", type=Path)
    d.add_argument("--format", choices=["table", "markdown", "json"], default="table")
    d.add_argument("--force", action="store_true", help="compare reports of different data/configs anyway")
    d.add_argument("--allow-different", action="store_true",
                   help="compare reports of different models or SAE sets anyway")
    d.add_argument("--exclude", action="append", default=[], metavar="PATTERN",
                   help="glob over SAE names or check ids to leave out of the diff (repeatable); an excluded "
                   "result that vanished is not a regression")
    d.set_defaults(func=cmd_diff)
    m = sub.add_parser("merge", help="merge the partial reports of a sharded run (--shard I/N) into one")
    m.add_argument("parts", type=Path, nargs="+", help="partial reports")
    m.add_argument("-o", "--out", type=Path, required=True, help="merged report")
    m.set_defaults(func=cmd_merge)
    pl = sub.add_parser("plot", help="PNG figures from a report")
    pl.add_argument("report", type=Path)
    pl.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    pl.add_argument("--baseline", type=Path, help="an older report: also draw the per-bucket deltas, and its SAEs "
                    "beside the new ones in sweep_<hook>.png")
    pl.set_defaults(func=cmd_plot)
    h = sub.add_parser("html", help="one self-contained HTML page from a report")
    h.add_argument("report", type=Path)
    h.add_argument("--baseline", type=Path, help="an older report to diff against (its SAEs are also drawn beside "
                   "the new ones in the sweep figures)")
    h.add_argument("-o", "--out", type=Path, required=True, help="output .html file")
    h.add_argument("--figures", type=Path, metavar="DIR", help="also keep the page's figures as PNG files in DIR "
                   "(drawn once for both: what `sae-checks plot` would write there)")
    h.set_defaults(func=cmd_html)
    z = sub.add_parser("zoo", help="the embedded tiny zoo: `sae-checks zoo build [--out DIR]`")
    z.add_argument("rest", nargs=argparse.REMAINDER)
    z.set_defaults(func=cmd_zoo)
    return p


def _log_to_stderr() -> None:
    """Library messages (logger ``sae_checks``: CUDA OOM retries, ...) on stderr, as the CLI's own."""
    import logging

    log = logging.getLogger("sae_checks")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (``EXIT_CODES``)."""
    _log_to_stderr()
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
