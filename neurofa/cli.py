"""The ``neurofa`` command.

``neurofa run CONFIG``, ``neurofa theory NAME``, ``neurofa compare CONFIG``, ``neurofa sweep CONFIG``,
``neurofa plot RUNDIR``. User errors (bad configuration, missing file) end with exit status 2 and a one-line reason;
unexpected errors with status 1. ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from neurofa._version import __version__
from neurofa.config import ConfigError, apply_overrides, from_dict, load_config
from neurofa.plotting import plot_run
from neurofa.results import Result
from neurofa.runner import run
from neurofa.sweep import parse_grid, sweep, sweep_figure
from neurofa.theory import experiment
from neurofa.validate import compare

__all__ = ["main", "build_parser"]

USER_ERRORS = (ConfigError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def _default_out(kind: str, stem: str, backend: str | None = None) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    parts = [stem] + ([backend] if backend else []) + [stamp]
    return Path("runs") / kind / "-".join(parts)


def _print_summary(summary: dict[str, Any], keys: tuple[str, ...] | None = None) -> None:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, list) and len(v) <= 8 and all(isinstance(x, (int, float)) for x in v):
            return "[" + ", ".join(fmt(x) for x in v) + "]"
        return str(v)

    for key, value in summary.items():
        if keys and key not in keys:
            continue
        if isinstance(value, list) and value and isinstance(value[0], list):
            continue  # per-seed tables live in summary.json
        print(f"  {key}: {fmt(value)}")


# ----------------------------------------------------------------------------------------------------------------
# subcommands


def cmd_run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config, args.set)
    out = Path(args.out) if args.out else _default_out("run", Path(args.config).stem, args.backend)
    result = run(cfg, backend=args.backend, seeds=args.seeds, progress=not args.quiet)
    result.save(out, plots=not args.no_plots)
    print(f"{cfg.name} ({args.backend}, {len(result.summary.get('seeds', []))} seeds) -> {out}")
    _print_summary(result.summary)
    return 0


def _theory_settings(module: Any, name: str, items: list[str]) -> Any:
    data = apply_overrides({}, items)
    return from_dict(module.Settings, data, source=f"theory {name}")


def cmd_theory(args: argparse.Namespace) -> int:
    module = experiment(args.name)
    settings = _theory_settings(module, args.name, args.set)
    out = Path(args.out) if args.out else _default_out("theory", args.name + ("-quick" if args.quick else ""))
    result = module.run(settings, quick=args.quick, progress=not args.quiet)
    result.save(out, plots=False)
    if not args.no_plots:
        module.figure(result, out / "figures")
    print(f"theory {args.name} -> {out}")
    _print_summary(result.summary)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    rundir = Path(args.rundir)
    result = Result.load(rundir)
    figdir = rundir / "figures"
    name = result.dataset.attrs.get("experiment")
    if name:
        paths = experiment(str(name)).figure(result, figdir)
    elif "sweep_keys" in result.dataset.attrs:
        paths = sweep_figure(result, figdir)
    else:
        paths = plot_run(result.dataset, figdir)
    for p in paths:
        print(p)
    if not paths:
        print(f"{rundir}: nothing to plot")
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.cluster_config:
        path = Path(args.cluster_config)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such cluster configuration file")
        options.update(yaml.safe_load(path.read_text()) or {})
    for key in ("queue", "account", "walltime", "cores", "memory", "jobs"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    out = Path(args.out) if args.out else _default_out("sweep", Path(args.config).stem, args.backend)
    result = sweep(
        args.config,
        parse_grid(args.grid),
        seeds=args.seeds,
        cluster=args.cluster,
        workers=args.workers,
        out=out,
        backend=args.backend,
        cluster_options=options,
        progress=not args.quiet,
        overrides=args.set,
        plots=not args.no_plots,
    )
    print(f"sweep -> {out}")
    if result.failed:
        print(f"{len(result.failed)} point(s) failed:", file=sys.stderr)
        for point in result.failed:
            print(f"  {point}", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    scales = [float(s) for s in args.scales.split(",")] if args.scales else None
    out = Path(args.out) if args.out else _default_out("compare", Path(args.config).stem)
    report = compare(args.config, seeds=args.seeds, scales=scales, out=out, overrides=args.set,
                     progress=not args.quiet)
    print(f"compare -> {out}")
    _print_summary(report.summary)
    return 0 if report.passed else 3


# ----------------------------------------------------------------------------------------------------------------
# parser


def _add_common(p: argparse.ArgumentParser, seeds: bool = True) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. --set plasticity.eta_bw=20 (repeatable)")
    if seeds:
        p.add_argument("--seeds", type=int, default=None, metavar="N",
                       help="number of seeds (0..N-1); default: simulation.seeds of the configuration")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory to write (default: runs/...)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--no-plots", action="store_true", help="do not write figures/")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="neurofa",
        description="Cortical microcircuits that learn without weight transport (FA, PAL): spiking (Brian2) "
                    "and rate reference.",
    )
    parser.add_argument("--version", action="version", version=f"neurofa {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("run", help="simulate a model configuration", description=(
        "Simulate CONFIG (a YAML file, see models/) for all seeds and write config.yaml, results.nc, summary.json "
        "and figures/ into the run directory."))
    p.add_argument("config", help="YAML configuration, e.g. models/pal_backprojections.yaml")
    p.add_argument("--backend", choices=("rate", "spiking"), default="rate", help="simulator (default: rate)")
    _add_common(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("theory", help="reproduce a theory result of the seed papers", description=(
        "Reproduce NAME (song2021, robertson2023, lillicrap2016): figure and summary.json. Settings are "
        "overridable with --set, e.g. --set p=2000 --set rule=bp."))
    p.add_argument("name", help="song2021 | robertson2023 | lillicrap2016")
    p.add_argument("--quick", action="store_true", help="a smaller, faster version of the experiment")
    _add_common(p, seeds=False)
    p.set_defaults(func=cmd_theory)

    p = sub.add_parser("compare", help="validate the spiking backend against the rate reference", description=(
        "Run CONFIG with both backends from the same seeds and initial weights and report how close they are "
        "(dynamics, learning, task), with a convergence test over --scales."))
    p.add_argument("config")
    p.add_argument("--scales", default=None, help="comma-separated rate/window scales, e.g. 1,4,16")
    _add_common(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("sweep", help="sweep parameters over seeds on a Dask cluster", description=(
        "Run CONFIG for every combination of --grid values and every seed. Finished points are kept: re-running "
        "the same command resumes."))
    p.add_argument("config")
    p.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...", required=True,
                   help="a swept key and its values (repeatable)")
    p.add_argument("--backend", choices=("rate", "spiking"), default="rate")
    p.add_argument("--cluster", default="local", help="local (default), slurm, or a scheduler address tcp://HOST:PORT")
    p.add_argument("--workers", type=int, default=None, help="worker processes (local) or jobs (slurm)")
    p.add_argument("--cluster-config", default=None, metavar="YAML", help="SLURM options file (queue, account, ...)")
    for key in ("queue", "account", "walltime", "memory"):
        p.add_argument(f"--{key}", default=None, help=f"SLURM {key}")
    p.add_argument("--cores", type=int, default=None, help="SLURM cores per job")
    p.add_argument("--jobs", type=int, default=None, help="SLURM jobs to start")
    _add_common(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plot", help="draw the figures of a finished run directory")
    p.add_argument("rundir")
    p.set_defaults(func=cmd_plot)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as exc:
        if args.debug:
            raise
        print(f"neurofa: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("neurofa: interrupted (finished files are complete; partial ones were not written)", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure: one line, the traceback on --debug
        if args.debug:
            raise
        print(f"neurofa: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
