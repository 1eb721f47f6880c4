"""Fuzzing the command line with mutated model files: every case ends in success, a one-line error (exit 2) or the
documented divergence status (exit 4), never in a traceback or an unexpected error.

Each example takes a shipped model file, shortens it to a few presentations (or one epoch), applies one to three
mutations — a number of the file scaled (mostly still valid, so the run happens), a value of another type or out of
range, a deleted key, an unknown key, a section replaced by a scalar
or a list by a number — and runs it with the rate backend through ``neurofa run``, with a small bound on the time
steps so that mutations that would make the run long are refused (exit 2) instead of run.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from neurofa.cli import main

MODELS = sorted((Path(__file__).resolve().parents[1] / "models").glob("*.yaml"))


def shortened(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if doc.get("model") == "mlp":
        doc["training"]["epochs"] = 1
        return doc
    t = float(doc.get("task", {}).get("t_pres", 1.0))
    doc.setdefault("simulation", {}).update(duration=8 * t, record_interval=4 * t, test_interval=0.0, seeds=2)
    return doc


values = st.one_of(
    st.none(), st.booleans(), st.integers(-10**9, 10**9), st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, -1, 1e-12, 1e300, "fa", "pal", "kp", "bogus", "1e3", [], [0], [1, 2, 3], {"a": 1}]),
    st.text(max_size=6), st.lists(st.one_of(st.integers(-3, 40), st.floats(-1e3, 1e3)), max_size=5),
)


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    path = draw(st.sampled_from(MODELS))
    doc = shortened(path)
    for _ in range(draw(st.integers(1, 3))):
        sections = [k for k, v in doc.items() if isinstance(v, dict)]
        op = draw(st.sampled_from(["scale", "scale", "scale", "set", "set", "delete", "unknown", "section", "top"]))
        if op == "top" or not sections:
            doc[draw(st.sampled_from(["name", "model", "extra"]))] = draw(values)
            continue
        section = draw(st.sampled_from(sections))
        keys = list(doc[section])
        if op == "section":
            doc[section] = draw(values)
        elif op == "unknown" or not keys:
            doc[section][draw(st.text(min_size=1, max_size=6))] = draw(values)
        elif op == "delete":
            del doc[section][draw(st.sampled_from(keys))]
        elif op == "scale":  # a plausible value: a number of the file's own, scaled (mostly still valid)
            key = draw(st.sampled_from(keys))
            factor = draw(st.sampled_from([0.0, -1.0, 0.1, 0.5, 2.0, 3.0, 10.0]))
            old = doc[section][key]
            if isinstance(old, (int, float)) and not isinstance(old, bool):
                doc[section][key] = type(old)(old * factor) if isinstance(old, float) else int(old * factor)
            elif isinstance(old, list) and old and all(isinstance(v, (int, float)) for v in old):
                doc[section][key] = [v * factor for v in old]
        else:
            doc[section][draw(st.sampled_from(keys))] = draw(values)
    return path.stem, copy.deepcopy(doc)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(case=mutated())
def test_mutated_model_files_end_in_success_or_a_one_line_error(case: tuple[str, dict[str, Any]],
                                                                 tmp_path_factory: pytest.TempPathFactory,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    name, doc = case
    directory = tmp_path_factory.mktemp(name)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    capsys.readouterr()
    code = main(["run", str(path), "--out", str(directory / "run"), "--quiet", "--no-plots",
                 "--set", "simulation.max_steps=2e5"])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 2, 4), (code, err)
    if code in (2, 4):
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("neurofa: error:"), err
