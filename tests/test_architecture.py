"""The package's shape, checked on its source: imports point one way, the rate reference never touches Brian2, the
feedback mode is decided by the rule registry alone, and the simulators' functions stay short."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from neurofa.model.rule import FEEDBACK
from neurofa.rate.layered import RULES as DISCRETE_RULES

PACKAGE = Path(__file__).resolve().parents[1] / "neurofa"
#: modules where a rule's own name may appear in a comparison: the rule registries themselves
RULE_MODULES = {"neurofa.model.rule", "neurofa.rate.layered"} | {
    f"neurofa.model.rules.{p.stem}" for p in (PACKAGE / "model" / "rules").glob("*.py")}
#: imports allowed inside functions: Brian2 (imported on first simulation), optional dependencies, and what a single
#: run does not need (matplotlib for figures, SciPy for the comparison's fits, and the commands that bring SciPy:
#: compare, theory), so that ``neurofa run`` and ``import neurofa`` start in about 0.7 s, not 1.5 s
LAZY = {"brian2", "sklearn.datasets", "dask_jobqueue", "matplotlib", "scipy", "neurofa.validate", "neurofa.theory"}


def modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


def _runtime_imports(tree: ast.Module, known: set[str]) -> set[str]:
    """neurofa modules imported at module level (not under ``if TYPE_CHECKING``); ``from pkg import submodule``
    counts as an import of the submodule."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        for sub in ast.walk(node) if isinstance(node, (ast.Import, ast.ImportFrom, ast.If, ast.Try)) else ():
            if isinstance(sub, ast.Import):
                found |= {a.name for a in sub.names if a.name.startswith("neurofa")}
            elif isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("neurofa"):
                for a in sub.names:
                    full = f"{sub.module}.{a.name}"
                    found.add(full if full in known else sub.module)
    return found


def test_imports_have_no_cycles() -> None:
    mods = modules()
    graph = {m: {i for i in _runtime_imports(t, set(mods)) if i in mods and i != m} for m, t in mods.items()}
    # a package's __init__ may import its own submodules (re-exports); edges into a package from its submodules
    # are the cycles that matter
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in graph[m]:
            if m.startswith(n + ".") or (n == "neurofa" and m != "neurofa"):
                raise AssertionError(f"{m} imports its package {n}")
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(n):] + [n]))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m)


def test_the_rate_reference_never_imports_the_simulator_it_checks() -> None:
    for name, tree in modules().items():
        if not name.startswith(("neurofa.rate", "neurofa.model", "neurofa.recording")):
            continue
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.startswith(("brian2", "neurofa.spiking")) for n in names), (name, names)


def test_imports_inside_functions_are_only_brian2_and_optional_dependencies() -> None:
    for name, tree in modules().items():
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(func):
                if isinstance(node, ast.Import):
                    assert all(a.name.split(".")[0] in LAZY or a.name in LAZY for a in node.names), (name, func.name)
                elif isinstance(node, ast.ImportFrom):
                    assert (node.module or "") in LAZY or (node.module or "").split(".")[0] in LAZY, (name, func.name)


def test_a_single_run_imports_neither_brian2_scipy_stats_nor_matplotlib() -> None:
    """``import neurofa`` and the rate backend leave the heavy libraries to the commands that use them (Dask stays:
    ``neurofa.sweep`` is the function only if the package imports it first)."""
    import subprocess
    import sys

    code = ("import sys, neurofa, neurofa.cli, neurofa.rate.microcircuit; "  # numba imports bare scipy (6 ms)
            "print(sorted(({m.split('.')[0] for m in sys.modules} | set(sys.modules)) & {'brian2', 'scipy.stats', "
            "'matplotlib'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
    import neurofa
    import neurofa.validate  # noqa: F401  (a submodule import must not shadow the function)

    assert callable(neurofa.sweep) and callable(neurofa.compare)  # compare: imported on first use
    with pytest.raises(AttributeError, match="no attribute 'compar'"):
        neurofa.compar  # noqa: B018


def test_the_feedback_mode_is_never_compared_as_a_string_outside_the_rule_modules() -> None:
    names = set(FEEDBACK) | set(DISCRETE_RULES)
    for name, tree in modules().items():
        if name in RULE_MODULES or name.startswith("neurofa.theory"):
            continue  # the theory reproductions compare their own two-rule settings (Song2021: fa, bp)
        for node in ast.walk(tree):
            if isinstance(node, ast.Compare):
                operands = [node.left, *node.comparators]
                strings = {o.value for o in operands if isinstance(o, ast.Constant) and isinstance(o.value, str)}
                for o in operands:
                    if isinstance(o, (ast.Tuple, ast.List, ast.Set)):
                        strings |= {e.value for e in o.elts if isinstance(e, ast.Constant)}
                assert not (strings & names), (name, ast.unparse(node))


@pytest.mark.parametrize("subpackage", ["rate", "spiking"])
def test_simulator_functions_are_short(subpackage: str) -> None:
    for path in sorted((PACKAGE / subpackage).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                assert length <= 80, f"{path.name}:{node.lineno} {node.name} has {length} lines"


def test_docstrings_cite_sections_that_exist() -> None:
    """Every ``docs/science.md §X.Y`` cited in the package names a section of the project's own science notes."""
    import re

    text = (PACKAGE.parent / "docs" / "science.md").read_text()
    sections = set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", text, flags=re.M))
    cited: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        assert "SCIENCE.md" not in source, path
        for match in re.finditer(r"docs/science\.md``? (§[\d.§–, ]+)", source):
            cited |= set(re.findall(r"(\d+(?:\.\d+)?)", match.group(1)))
    assert cited, "no citations found"
    assert cited <= sections, sorted(cited - sections)


def _definitions(tree: ast.Module) -> list[tuple[str, int]]:
    """Public top-level functions, classes and constants, and public methods, with their line numbers; registered
    callables (decorated functions) are used by their registry."""
    out = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.decorator_list:
            out.append((node.name, node.lineno))
        if isinstance(node, ast.ClassDef):
            out += [(f.name, f.lineno) for f in node.body if isinstance(f, ast.FunctionDef)
                    and not f.decorator_list and not f.name.startswith("_")]
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            out += [(t.id, node.lineno) for t in targets if isinstance(t, ast.Name) and t.id.isupper()]
    return [(name, line) for name, line in out if not name.startswith("_")]


def test_nothing_is_defined_that_nothing_uses() -> None:
    """Every public name the package defines is used somewhere in its code, tests or scripts (names only in
    ``__all__`` or a docstring do not count)."""
    root = PACKAGE.parent
    used: set[str] = set()
    for path in [*PACKAGE.rglob("*.py"), *(root / "tests").glob("*.py"), *(root / "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.alias) and not path.is_relative_to(PACKAGE):
                used.add(node.name.split(".")[-1])  # imported by a test or script
            elif isinstance(node, ast.ImportFrom) and path.is_relative_to(PACKAGE):
                used |= {a.name for a in node.names if a.name != "*"}
    used |= {"setup"}  # called by Dask (WorkerPlugin.setup)
    unused = [f"{path.relative_to(root)}:{line} {name}" for path in sorted(PACKAGE.rglob("*.py"))
              for name, line in _definitions(ast.parse(path.read_text())) if name not in used]
    assert not unused, unused
