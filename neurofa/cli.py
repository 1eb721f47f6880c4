"""The ``neurofa`` command.

``neurofa run CONFIG`` (``neurofa run --resume RUNDIR`` continues a killed run from its last checkpoint),
``neurofa theory NAME``, ``neurofa compare CONFIG``, ``neurofa sweep CONFIG``, ``neurofa plot RUNDIR``,
``neurofa export RUNDIR``. Exit status: 0 success; 2 a user error (bad configuration, an output location that
cannot be written or already holds a run, a missing file), with a one-line reason, before anything is simulated;
3 a comparison that fails a level; 4 a simulation that diverged (its partial results are written,
``"diverged": true``); 1 an unexpected error; 130 an interruption (the run directory stays marked incomplete).
``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from neurofa._version import __version__
from neurofa.atomic import atomic_write_text
from neurofa.checkpoint import DIRECTORY as CHECKPOINT_DIRECTORY
from neurofa.config import ConfigError, apply_overrides, dump_config, from_dict, load_config, yaml_load
from neurofa.divergence import EXIT_DIVERGED, DivergenceError
from neurofa.estimate import check_bounds
from neurofa.export import EXPORTERS, export
from neurofa.plotting import plot_run
from neurofa.results import Result
from neurofa.rundir import RunDirectory, is_complete
from neurofa.runner import estimate, resolve_seeds, run
from neurofa.spiking.noise import weight_noise
from neurofa.spiking.params import mean_field_config
from neurofa.sweep import parse_grid, sweep, sweep_figure

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


def _warn(summary: dict[str, Any]) -> None:
    for warning in summary.get("warnings", []):
        print(f"neurofa: warning: {warning}", file=sys.stderr)


def _resumed(args: argparse.Namespace) -> tuple[Any, str, list[int], Path]:
    """Configuration, backend, seeds and directory of the run ``--resume`` names (from its ``config.yaml``)."""
    out = Path(args.resume)
    clash = [name for name, given in (("CONFIG", args.config), ("--set", args.set), ("--seeds", args.seeds),
                                      ("--out", args.out), ("--overwrite", args.overwrite),
                                      ("--backend", args.backend), ("--mean-field", args.mean_field)) if given]
    if clash:
        raise ConfigError(f"--resume = {str(out)!r} continues that run as it was configured; {', '.join(clash)} "
                          "cannot be given with it")
    text = out / "config.yaml"
    if not text.exists():
        raise FileNotFoundError(f"--resume = {str(out)!r}: not a run directory (no config.yaml)")
    provenance = (yaml_load(text.read_text()) or {}).get("provenance", {})
    cfg = load_config(text)
    backend = str(provenance.get("backend", "rate"))
    seeds = [int(s) for s in provenance["seeds"]] if "seeds" in provenance else resolve_seeds(cfg, None)
    return cfg, backend, seeds, out


def cmd_run(args: argparse.Namespace) -> int:
    if args.resume:
        cfg, backend, seeds, out = _resumed(args)
        if is_complete(out):
            print(f"{out} is complete; nothing to resume")
            return 0
        if not (out / CHECKPOINT_DIRECTORY).exists():
            print(f"neurofa: note: {out} has no checkpoint (simulation.checkpoint_interval = "
                  f"{cfg.simulation.checkpoint_interval:g}); the run starts again from the beginning", file=sys.stderr)
    else:
        if not args.config:
            raise ConfigError("give a configuration file (CONFIG) or --resume RUN_DIR")
        cfg, backend = load_config(args.config, args.set), args.backend or "rate"
        if args.mean_field:
            if backend != "rate":
                raise ConfigError(f"--mean-field runs the rate backend; --backend = {backend!r} cannot be given "
                                  "with it (allowed: rate, or leave --backend out)")
            cfg = mean_field_config(cfg)
        seeds = resolve_seeds(cfg, args.seeds)
        label = "mean-field" if args.mean_field else backend
        out = Path(args.out) if args.out else _default_out("run", Path(args.config).stem, label)
    cost = estimate(cfg, backend, len(seeds))
    check_bounds(cfg, cost)
    if args.check:
        RunDirectory.check(out, overwrite=args.overwrite, resume=bool(args.resume))
        print(f"{cfg.name} ({backend}, {len(seeds)} seeds): valid; {cost.describe()}; {out} can be written")
        noise = weight_noise(cfg) if backend == "spiking" else ()
        if any(noise):
            layers = ", ".join(f"W{i + 1} {s:.3g}" for i, s in enumerate(noise))
            print(f"  spike-train rule: the weights' random walk over the run (σ_w at φ = 1/2, x = 1, "
                  f"docs/science.md §3.10): {layers}")
        return 0
    with RunDirectory.open(out, command="run", overwrite=args.overwrite, resume=bool(args.resume)) as rundir:
        if not args.resume:
            atomic_write_text(out / "config.yaml", dump_config(cfg, extra={"backend": backend, "seeds": seeds}))
        try:
            result = run(cfg, backend=backend, seeds=seeds, progress=not args.quiet,
                         checkpoint=out / CHECKPOINT_DIRECTORY)
        except DivergenceError as exc:
            if exc.result is not None:
                exc.result.write(rundir, plots=not args.no_plots)
            print(f"neurofa: error: {exc} (in {out})", file=sys.stderr)
            return EXIT_DIVERGED
        result.write(rundir, plots=not args.no_plots)
    print(f"{cfg.name} ({backend}, {len(seeds)} seeds) -> {out}")
    _print_summary(result.summary)
    _warn(result.summary)
    return 0


def _theory_settings(module: Any, name: str, items: list[str]) -> Any:
    data = apply_overrides({}, items)
    return from_dict(module.Settings, data, source=f"theory {name}")


def cmd_theory(args: argparse.Namespace) -> int:
    from neurofa.theory import experiment

    module = experiment(args.name)
    settings = _theory_settings(module, args.name, args.set)
    out = Path(args.out) if args.out else _default_out("theory", args.name + ("-quick" if args.quick else ""))
    with RunDirectory.open(out, command=f"theory {args.name}", overwrite=args.overwrite) as rundir:
        result = module.run(settings, quick=args.quick, progress=not args.quiet)
        result.write(rundir, plots=False if args.no_plots else module.figure)
    print(f"theory {args.name} -> {out}")
    _print_summary(result.summary)
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    rundir = Path(args.rundir)
    result = Result.load(rundir)
    figdir = rundir / "figures"
    name = result.dataset.attrs.get("experiment")
    if name:
        from neurofa.theory import experiment

        paths = experiment(str(name)).figure(result, figdir)
    elif "sweep_keys" in result.dataset.attrs:
        paths = sweep_figure(result, figdir)
    else:
        paths = plot_run(result.dataset, figdir, result.spikes)
    for p in paths:
        print(p)
    if not paths:
        print(f"{rundir}: nothing to plot")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    rundir = Path(args.rundir)
    path = export(Result.load(rundir), rundir, args.format)
    print(path)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.cluster_config:
        path = Path(args.cluster_config)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such cluster configuration file")
        try:
            loaded = yaml_load(path.read_text())
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{path}: not a YAML cluster configuration ({str(exc).splitlines()[0]})") from None
        if not isinstance(loaded, dict | None):
            raise ConfigError(f"{path}: a cluster configuration is a mapping of options, got {type(loaded).__name__}")
        options.update(loaded or {})
    for key in ("queue", "account", "walltime", "cores", "memory", "jobs"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    out = Path(args.out) if args.out else _default_out("sweep", Path(args.config).stem, args.backend)
    result = sweep(
        args.config,
        parse_grid(args.grid),
        overwrite=args.overwrite,
        seeds=args.seeds,
        cluster=args.cluster,
        workers=args.workers,
        out=out,
        backend=args.backend,
        cluster_options=options,
        threads=args.threads,
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


def _number_list(option: str, text: str | None, kind: type, expected: str) -> list[Any] | None:
    """A comma-separated option value (``--scales``, ``--populations``) as a list of ``kind``; None when absent."""
    if not text:
        return None
    try:
        return [kind(s) for s in text.split(",")]
    except ValueError:
        raise ConfigError(f"{option} = {text!r} is invalid: expected comma-separated {expected}, e.g. 1,4,16") from None


def cmd_compare(args: argparse.Namespace) -> int:
    from neurofa.validate import compare

    scales = _number_list("--scales", args.scales, float, "numbers")
    populations = _number_list("--populations", args.populations, int, "whole numbers of cells per unit")
    out = Path(args.out) if args.out else _default_out("compare", Path(args.config).stem)
    with RunDirectory.open(out, command="compare", overwrite=args.overwrite) as rundir:
        report = compare(args.config, seeds=args.seeds, scales=scales, overrides=args.set, progress=not args.quiet,
                         populations=populations)
        report.write(rundir, plots=not args.no_plots)
    print(f"compare -> {out}")
    _print_summary(report.summary)
    return 0 if report.passed else 3


# ----------------------------------------------------------------------------------------------------------------
# parser


def seed_spec(text: str) -> int | list[int]:
    """``--seeds``: a count ``N`` (seeds 0…N−1), a range ``A:B`` (seeds A…B−1) or a list ``S,T,…``; the values are
    checked by :func:`neurofa.runner.resolve_seeds`, as every seed argument is.

    A range or a list runs those seeds only, so the seeds of one configuration can be spread over processes or
    machines: a seed's result does not depend on the other seeds of its batch (``tests/test_cli.py`` checks it
    bitwise on the rate backend; the spiking backend runs each seed as its own run of the built program)."""
    try:
        if ":" in text:
            start, stop = (int(v) for v in text.split(":"))
            return list(range(start, stop))
        if "," in text:
            return [int(v) for v in text.split(",")]
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is invalid; allowed: a count N (seeds 0..N-1), a range A:B "
                                         "(seeds A..B-1) or a list of seeds such as 3,7") from None


def _add_common(p: argparse.ArgumentParser, seeds: bool = True) -> None:
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a configuration value, e.g. --set plasticity.eta_bw=20 (repeatable)")
    if seeds:
        p.add_argument("--seeds", type=seed_spec, default=None, metavar="N|A:B|S,T,...",
                       help="the seeds: a count N (seeds 0..N-1), a range A:B (seeds A..B-1, e.g. 2:3 for seed 2 "
                            "alone) or a list S,T,...; default: simulation.seeds of the configuration")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory to write (default: runs/...)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run that --out already holds (otherwise such a directory is refused)")
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
        "and figures/ into the run directory (spiking runs with spiking.record_spikes also spikes.nc). With "
        "simulation.checkpoint_interval > 0 the run writes checkpoints into RUN_DIR/checkpoint/, and "
        "`neurofa run --resume RUN_DIR` continues it after it was killed."))
    p.add_argument("config", nargs="?", help="YAML configuration, e.g. models/pal_backprojections.yaml")
    p.add_argument("--backend", choices=("rate", "spiking"), default=None, help="simulator (default: rate)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the killed run in RUN_DIR (its --out) from its last checkpoint "
                        "(simulation.checkpoint_interval), with its configuration, backend and seeds")
    p.add_argument("--check", action="store_true",
                   help="validate the configuration, the backend, the estimated cost and --out, then stop")
    p.add_argument("--mean-field", action="store_true",
                   help="run the exact rate mean field of the spiking configuration CONFIG "
                        "(neurofa.spiking.params.mean_field_config: the spiking dt, presentation time and "
                        "time scale) with the rate backend")
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
        "(dynamics, learning, task), with convergence tests over --scales (ν_max) and --populations (cells per "
        "unit)."))
    p.add_argument("config")
    p.add_argument("--scales", default=None, help="comma-separated rate/window scales, e.g. 1,4,16")
    p.add_argument("--populations", default=None,
                   help="comma-separated cells per rate unit (network.population), e.g. 1,4,16: a second "
                        "convergence test, on the dynamics and the learning level")
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
    p.add_argument("--threads", type=int, default=None, help="spiking.threads of every point: threads per "
                   "run; local workers × threads stay within the cores, SLURM jobs request threads cores per worker")
    _add_common(p)
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plot", help="draw the figures of a finished run directory")
    p.add_argument("rundir")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("export", help="export the recorded spikes of a run directory", description=(
        "Write the spikes recorded with spiking.record_spikes in RUNDIR to the field's formats: --format nwb "
        "writes RUNDIR/spikes.nwb (needs pip install 'neurofa[io]')."))
    p.add_argument("rundir")
    p.add_argument("--format", choices=tuple(EXPORTERS), default="nwb", help="file format (default: nwb)")
    p.set_defaults(func=cmd_export)
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
    except DivergenceError as exc:
        if args.debug:
            raise
        print(f"neurofa: error: {exc}", file=sys.stderr)
        return EXIT_DIVERGED
    except MemoryError:
        if args.debug:
            raise
        print("neurofa: error: out of memory (see simulation.max_memory_gb and `neurofa run --check`)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("neurofa: interrupted (the run directory stays marked incomplete; finished files are complete; a run "
              "with checkpoints continues with neurofa run --resume RUN_DIR)", file=sys.stderr)
        return 130
    except Exception as exc:  # an unexpected failure: one line, the traceback on --debug
        if args.debug:
            raise
        print(f"neurofa: error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
