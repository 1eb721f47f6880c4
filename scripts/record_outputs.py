"""Record every model file's outputs at a short duration, and compare two such records.

A refactoring proves that nothing moved by recording before and after and comparing:

    python scripts/record_outputs.py record runs/outputs-before          # on the old code
    python scripts/record_outputs.py record runs/outputs-after           # on the new code
    python scripts/record_outputs.py compare runs/outputs-before runs/outputs-after

Cases (one file each, ``<case>.nc`` plus ``<case>.json`` with the run's summary):

- every ``models/*.yaml``: the rate backend (``model: mlp``: 2 epochs; microcircuits: 40 presentations, 2 seeds),
  once plain and once with ``simulation.record_detail`` (per-neuron window means, weight snapshots);
- every spiking model file (``spiking_*.yaml``, ``quickstart.yaml``): the spiking backend in ``cpp_standalone``,
  seed 0, 20 presentations with ``record_detail`` (spike counts per window), and the rate backend on its exact mean
  field (``neurofa.spiking.mean_field_config``); the mean-field configuration itself goes into the JSON;
- the dynamics level of ``neurofa compare models/quickstart.yaml`` (both backends, 2 seeds);
- spiking runs of rate model files that no spiking file covers: the ``bp`` rule (mirrored increments) with and
  without the forward low-pass, and PAL's 1-1-1 teacher with the low-pass.

``compare`` checks every variable and coordinate: bitwise equal, or the largest relative difference. It exits 1
when a variable differs by more than ``--rtol`` (default 0: bitwise) or is missing. A configuration that a backend
refuses is recorded as ``<case>.error`` (its one-line message), and the refusal must stay the same.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import neurofa as nf
from neurofa.config import ConfigError, load_config, to_dict
from neurofa.results import to_jsonable
from neurofa.spiking import mean_field_config
from neurofa.validate import dynamics_config

MODELS = Path(__file__).resolve().parents[1] / "models"
SPIKING_EXTRA = {  # case name: (model file, overrides)
    "bp_teacher_1-1-1": ("bp_teacher_1-1-1", {}),
    "bp_teacher_1-1-1_no_lowpass": ("bp_teacher_1-1-1", {"plasticity.tau_lo": 0.0}),
    "bars_bp": ("bars_bp", {}),
    "pal_teacher_1-1-1": ("pal_teacher_1-1-1", {}),
}


def short(cfg: Any, presentations: int, record_every: int) -> dict[str, Any]:
    """Overrides that shorten a microcircuit configuration to ``presentations`` inputs."""
    t = cfg.task.t_pres
    over: dict[str, Any] = {
        "simulation.duration": presentations * t,
        "simulation.record_interval": record_every * t,
    }
    if cfg.simulation.test_interval > 0:
        over["simulation.test_interval"] = presentations // 2 * t
    if cfg.plasticity.eta_decay > 0:  # keep the annealing visible within the short run
        over["plasticity.eta_decay"] = presentations // 4 * t
    return over


def cases() -> dict[str, tuple[str, Any, list[int]]]:
    """name -> (backend, configuration, seeds)."""
    out: dict[str, tuple[str, Any, list[int]]] = {}
    for path in sorted(MODELS.glob("*.yaml")):
        cfg = load_config(path)
        stem = path.stem
        if cfg.model == "mlp":
            out[f"rate_{stem}"] = ("rate", load_config(path, {"training.epochs": 2}), [0, 1])
            continue
        base = short(cfg, 40, 10)
        out[f"rate_{stem}"] = ("rate", load_config(path, base), [0, 1])
        out[f"rate_{stem}_detail"] = ("rate", load_config(path, {**base, "simulation.record_detail": True}), [0, 1])
        if stem.startswith("spiking_") or stem == "quickstart":
            spk = load_config(path, {**short(cfg, 20, 5), "simulation.record_detail": True,
                                     "spiking.report": False})
            out[f"spiking_{stem}"] = ("spiking", spk, [0])
            out[f"meanfield_{stem}"] = ("rate", mean_field_config(spk), [0])
        if stem == "quickstart":  # the dynamics level of `neurofa compare`: no plasticity, no PAL noise
            dyn = dynamics_config(load_config(path, {"spiking.report": False}))
            out["spiking_quickstart_dynamics"] = ("spiking", dyn, [0, 1])
            out["meanfield_quickstart_dynamics"] = ("rate", mean_field_config(dyn), [0, 1])
    for name, (stem, extra) in SPIKING_EXTRA.items():
        cfg = load_config(MODELS / f"{stem}.yaml", extra)
        spk = load_config(cfg, {**short(cfg, 20, 5), "simulation.record_detail": True, "spiking.report": False})
        out[f"spiking_{name}"] = ("spiking", spk, [0])
    return out


def record(directory: Path, only: list[str], skip_existing: bool) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    for name, (backend, cfg, seeds) in cases().items():
        if only and not any(o in name for o in only):
            continue
        if skip_existing and ((directory / f"{name}.nc").exists() or (directory / f"{name}.error").exists()):
            continue
        start = time.perf_counter()
        try:
            result = nf.run(cfg, backend=backend, seeds=seeds, progress=False)
        except ConfigError as exc:  # a configuration this backend refuses: the refusal is the output
            (directory / f"{name}.error").write_text(f"{exc}\n")
            print(f"{name}: refused ({exc})", flush=True)
            continue
        ds = result.dataset.copy()
        ds.attrs = {}
        ds.to_netcdf(directory / f"{name}.nc", engine="scipy")
        info = {"summary": result.summary, "config": to_dict(cfg)}
        (directory / f"{name}.json").write_text(json.dumps(to_jsonable(info), indent=1, default=str) + "\n")
        print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)
    return 0


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """0 when bitwise equal (NaN where NaN), else the largest relative difference (inf on a shape change)."""
    if a.shape != b.shape:
        return float("inf")
    if a.dtype.kind not in "fc":
        return 0.0 if np.array_equal(a, b) else float("inf")
    if np.array_equal(a, b, equal_nan=True):
        return 0.0
    if not np.array_equal(np.isnan(a), np.isnan(b)):
        return float("inf")
    ok = ~np.isnan(a)
    scale = np.maximum(np.abs(a[ok]), np.abs(b[ok]))
    rel = np.abs(a[ok] - b[ok]) / np.where(scale > 0, scale, 1.0)
    return float(rel.max())


def compare(before: Path, after: Path, rtol: float) -> int:
    failed = 0
    for path in sorted(before.glob("*.error")):
        other = after / path.name
        same = other.exists() and other.read_text() == path.read_text()
        failed += not same
        print(f"{path.stem}: {'same refusal' if same else 'REFUSAL DIFFERS'} ({path.read_text().strip()})")
    names = sorted(p.stem for p in before.glob("*.nc"))
    for name in names:
        other = after / f"{name}.nc"
        if not other.exists():
            print(f"{name}: MISSING in {after}")
            failed += 1
            continue
        a = xr.load_dataset(before / f"{name}.nc", engine="scipy")
        b = xr.load_dataset(other, engine="scipy")
        worst, notes = 0.0, []
        for var in sorted(set(a.variables) | set(b.variables)):
            if var not in a.variables or var not in b.variables:
                notes.append(f"{var} only in {'before' if var in a.variables else 'after'}")
                worst = float("inf")
                continue
            d = _difference(a[var].values, b[var].values)
            if d > 0:
                notes.append(f"{var} {d:.3g}")
            worst = max(worst, d)
        verdict = "bitwise" if worst == 0 else ("within rtol" if worst <= rtol else "DIFFERS")
        failed += worst > rtol
        print(f"{name}: {verdict}" + (f" ({'; '.join(notes)})" if notes else ""))
    print(f"{len(names) - failed}/{len(names)} cases {'bitwise' if rtol == 0 else f'within {rtol:g}'}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("record")
    p.add_argument("directory", type=Path)
    p.add_argument("--only", nargs="*", default=[], help="record only cases whose name contains one of these")
    p.add_argument("--skip-existing", action="store_true", help="keep cases already recorded in DIRECTORY")
    p = sub.add_parser("compare")
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--rtol", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.command == "record":
        return record(args.directory, args.only, args.skip_existing)
    return compare(args.before, args.after, args.rtol)


if __name__ == "__main__":
    sys.exit(main())
