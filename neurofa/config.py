"""Configuration: YAML into typed dataclasses, validated once at the edge.

A configuration is plain data. :func:`load_config` reads a YAML file, applies ``"a.b=c"`` overrides, converts
every value to the type its dataclass field declares and checks the constraints, raising :class:`ConfigError`
with the file, the key path, the bad value and what is allowed (plus a close match for a misspelled key).
Everything past this module may trust the configuration it receives.

Checks that belong to one model kind, task or backend live with that code and register here
(:func:`register_check`): the model kinds and tasks are checked by :func:`load_config`, a backend's checks by
:func:`check_backend` before it runs. Choices that other modules register (``plasticity.feedback``, ``task.name``)
are plain strings in the schema and validated by those checks.

Units: times are in ms, rates in Hz, voltages dimensionless (``docs/science.md`` §2).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
import subprocess
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from neurofa._version import __version__

__all__ = [
    "ConfigError",
    "Config",
    "Network",
    "Conductances",
    "Plasticity",
    "Task",
    "Training",
    "Simulation",
    "Spiking",
    "Validation",
    "load_config",
    "from_dict",
    "to_dict",
    "dump_config",
    "apply_overrides",
    "parse_override",
    "yaml_load",
    "YamlLoader",
    "validate_dataclass",
    "register_check",
    "check_backend",
    "choice_error",
    "layer_values",
    "provenance",
    "ACTIVATIONS",
]


class ConfigError(ValueError):
    """A configuration problem a user can fix; the message is one line naming file, key and allowed values."""


ACTIVATIONS = ("logistic", "relu", "tanh", "linear", "softplus")


def _meta(minimum: float | None = None, exclusive: bool = False, help: str = "") -> dict[str, Any]:
    return {"minimum": minimum, "exclusive": exclusive, "help": help}


def positive(default: Any, help: str = "") -> Any:
    """A field whose value must be > 0."""
    return field(default=default, metadata=_meta(0.0, exclusive=True, help=help))


def nonnegative(default: Any, help: str = "") -> Any:
    """A field whose value must be ≥ 0."""
    return field(default=default, metadata=_meta(0.0, help=help))


@dataclass
class Network:
    """Layer sizes and initialisation.

    ``layers`` lists the number of pyramidal cells per layer, input first, output last (e.g. 5-20-10-20-5).
    ``population`` is the number of spiking cells that represent one rate unit in the spiking backend
    (``docs/science.md`` §3.9); the rate model is its mean field at every population size.
    Forward weights start in U[−init_forward, init_forward], feedback weights in U[−init_feedback, init_feedback]
    unless ``init_feedback_range`` gives an explicit interval (e.g. [-1, 0] for the wrong-sign start of PAL Fig 4).
    """

    layers: list[int] = field(default_factory=lambda: [5, 20, 10, 20, 5])
    activation: Literal["logistic", "relu", "tanh", "linear", "softplus"] = "logistic"
    init_forward: float = positive(1.0)
    init_feedback: float = positive(1.0)
    init_forward_range: list[float] = field(default_factory=list)
    init_feedback_range: list[float] = field(default_factory=list)
    self_predicting: bool = True
    output_linear: bool = False
    population: int = positive(1, "spiking cells per rate unit (pyramidal cells and interneurons; the rate "
                                  "backend simulates the mean field, which does not depend on it)")


@dataclass
class Conductances:
    """Dendritic microcircuit conductances (``docs/science.md`` §2.2, PAL reference values)."""

    g_l: float = positive(0.03)
    g_bas: float = nonnegative(0.1)
    g_api: float = nonnegative(0.06)
    g_den: float = nonnegative(0.1)
    g_nI: float = nonnegative(0.06)
    g_ntgt: float = nonnegative(0.06)


@dataclass
class Plasticity:
    """Learning rates and the feedback rule (one registered choice, one implementation each).

    ``feedback`` names a registered rule: for microcircuits bp, fa, kp, pal (:mod:`neurofa.model.rules`), for
    discrete-time networks also dfa, sign, mirror (:mod:`neurofa.rate.layered`). Microcircuit rates ``eta_fw``
    (per layer or one value, 1/ms), ``eta_ip``, ``eta_pi``, ``eta_bw``; PAL noise ``sigma``, ``tau_xi``,
    ``tau_hp`` (ms) and decay ``alpha`` (also the weight decay λ of ``kp``, per unit of η); forward increments
    low-passed with ``tau_lo`` (ms, 0 = off). Annealing: ``eta_decay`` (ms, 0 = off) multiplies every plastic rate
    (eta_fw, eta_ip, eta_pi and PAL's eta_bw, hence also the decays) by f(t) = 1 / (1 + t / eta_decay)
    (:func:`neurofa.circuit.learning_rate_factor`).
    """

    feedback: str = "pal"
    learn_forward: bool = True
    learn_lateral: bool = True
    learn_feedback: bool = True
    freeze_hidden: bool = False
    eta_fw: list[float] = field(default_factory=lambda: [0.0])
    eta_ip: list[float] = field(default_factory=lambda: [0.0])
    eta_pi: list[float] = field(default_factory=lambda: [5.0])
    eta_bw: list[float] = field(default_factory=lambda: [50.0])
    alpha: float = nonnegative(1e-5)
    sigma: float = nonnegative(0.05)
    tau_xi: float = positive(0.1)
    tau_hp: float = positive(0.1)
    tau_lo: float = nonnegative(100.0)
    eta_decay: float = nonnegative(0.0, "learning-rate annealing time constant in ms, f = 1/(1 + t/eta_decay); 0 = off")


@dataclass
class Task:
    """The input stream and targets.

    ``name`` names a registered task (:mod:`neurofa.tasks`): backprojection (inputs only, PAL Fig 3), teacher
    (targets from a fixed teacher network), yinyang, bars, digits (scikit-learn's bundled copy), mnist (local files
    under ``path``).
    """

    name: str = "backprojection"
    t_pres: float = positive(1.0, "presentation time of one input, ms")
    input_low: float = 0.0
    input_high: float = 1.0
    n_train: int = nonnegative(100)
    n_test: int = nonnegative(0)
    teacher_layers: list[int] = field(default_factory=list)
    teacher_weights: list[float] = field(default_factory=list)
    teacher_scale: float = positive(1.0)
    target_low: float = 0.1
    target_high: float = 1.0
    path: str = ""
    data_seed: int = nonnegative(0)


@dataclass
class Training:
    """Discrete-time (mlp) training: epochs of minibatch SGD with the chosen feedback rule."""

    epochs: int = positive(100)
    batch_size: int = positive(32)
    lr: float = positive(0.1)
    lr_feedback: float = nonnegative(0.01)
    weight_decay: float = nonnegative(0.0)
    noise: float = nonnegative(0.1)


@dataclass
class Simulation:
    """Time stepping of the continuous-time microcircuit; all times in ms."""

    duration: float = positive(1000.0)
    dt: float = positive(0.01)
    record_interval: float = positive(10.0)
    seeds: int = positive(1)
    prospective: bool = True
    scheme: Literal["lagged", "instant"] = "lagged"
    #: the rate step's implementation: numpy (the reference), fused (the compiled kernel of neurofa.rate.fused, an
    #: error where it does not cover the model), auto (the kernel where it covers the model, else numpy)
    rate_kernel: Literal["numpy", "fused", "auto"] = "numpy"
    #: floating-point type of the rate backend's weights and state: double (float64, the reference) or single
    #: (float32: half the memory traffic per weight; neurofa.rate.dynamics)
    rate_precision: Literal["double", "single"] = "double"
    test_interval: float = nonnegative(0.0)
    tau_syn: float = nonnegative(0.0, "synaptic low-pass of presynaptic rates in ms (0 = off; mean field of spikes)")
    filter_target: bool = False  # the nudging target passes the same synaptic low-pass (τ_syn; spiking: τ_s)
    record_detail: bool = False
    max_steps: float = positive(1e10, "refuse runs of more time steps, summed over seeds (neurofa.estimate)")
    max_memory_gb: float = positive(8.0, "refuse runs whose recordings need more memory, GiB (neurofa.estimate)")
    checkpoint_interval: float = nonnegative(0.0, "write a checkpoint every this much simulated time, ms as "
                                                  "duration (0 = never; neurofa.checkpoint)")


@dataclass
class Spiking:
    """Spiking-backend settings (ignored by the rate backend except for the mean-field options)."""

    device: Literal["runtime", "cpp_standalone"] = "cpp_standalone"
    nu_max: float = positive(200.0, "maximal firing rate, Hz")
    tau_s: float = positive(3.0, "synaptic trace time constant, ms")
    dt: float = positive(0.1, "Brian2 time step, ms")
    t_pres: float = nonnegative(0.0, "presentation time in ms (0 = scale task.t_pres)")
    tau_xi: float = nonnegative(0.0, "PAL noise time constant in ms (0 = derived)")
    tau_hp: float = nonnegative(0.0, "PAL high-pass time constant in ms (0 = derived)")
    sigma: float = nonnegative(0.0, "PAL noise amplitude (0 = derived)")
    input_spikes: Literal["poisson", "regular"] = "poisson"  # input cells: Poisson or integrate-and-fire phase
    post_signal: Literal["spikes", "rate"] = "spikes"  # Urbanczik–Senn's postsynaptic term: S/ν_max or φ(ŭ)
    pre_signal: Literal["trace", "rate"] = "trace"  # presynaptic factor of W, W_IP, B_PI: x or its expectation
    build_dir: str = ""
    threads: int = positive(1, "threads of one standalone run (cpp_standalone; ≤ the cores it may use)")
    #: floating-point type of every Brian2 variable: double (float64) or single (float32)
    precision: Literal["double", "single"] = "double"
    report: bool = True
    #: populations whose spike times are recorded: input, hidden, interneuron, output, or all ([] = none)
    record_spikes: list[str] = field(default_factory=list)
    #: [start, stop] windows in ms of the spiking run to record spikes in (negative: from the end of training);
    #: [] = all of it
    record_spikes_windows: list[list[float]] = field(default_factory=list)


@dataclass
class Validation:
    """Tolerances of ``neurofa compare`` (spiking against its rate mean field, ``docs/science.md`` §3.5).

    The dynamics level runs ``dynamics_duration`` ms with plasticity off and compares per-neuron window means;
    the learning level compares angle curves against the rate seed band (mean ± ``band_sd`` SD) or within
    ``angle_tolerance`` degrees, whichever is wider; the convergence fit must give a slope within
    ``slope ± slope_tolerance``.
    """

    dynamics_duration: float = positive(2000.0, "ms of plasticity-free simulation for the dynamics level")
    min_correlation: float = 0.95
    max_rel_rms: float = positive(0.10)
    band_sd: float = positive(2.0)
    angle_tolerance: float = nonnegative(5.0, "degrees")
    weight_tolerance: float = positive(0.25, "RMS weight difference relative to the weights' range")
    slope: float = 0.5
    slope_tolerance: float = positive(0.15)


@dataclass
class Config:
    """A whole experiment: model kind, network, task, plasticity and how to simulate it."""

    name: str = "unnamed"
    model: Literal["microcircuit", "mlp"] = "microcircuit"
    network: Network = field(default_factory=Network)
    conductances: Conductances = field(default_factory=Conductances)
    plasticity: Plasticity = field(default_factory=Plasticity)
    task: Task = field(default_factory=Task)
    training: Training = field(default_factory=Training)
    simulation: Simulation = field(default_factory=Simulation)
    spiking: Spiking = field(default_factory=Spiking)
    validation: Validation = field(default_factory=Validation)


# ----------------------------------------------------------------------------------------------------------------
# generic conversion and validation


def _where(source: str | None) -> str:
    return f"{source}: " if source else ""


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _convert(value: Any, tp: Any, path: str, source: str | None) -> Any:
    """Convert ``value`` to the declared type ``tp`` or raise a ConfigError naming ``path``."""
    origin = typing.get_origin(tp)

    def fail(extra: str = "") -> ConfigError:
        return ConfigError(f"{_where(source)}{path} = {value!r} is invalid: expected {_type_name(tp)}{extra}")

    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{_where(source)}{path} must be a mapping of keys, got {value!r}")
        return from_dict(typing.cast(type, tp), value, source=source, prefix=path)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            close = difflib.get_close_matches(str(value), [str(a) for a in allowed], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{_where(source)}{path} = {value!r} is not allowed; allowed: {', '.join(map(str, allowed))}{hint}"
            )
        return value
    if origin is list:
        (item,) = typing.get_args(tp)
        scalar = isinstance(value, (int, float)) and not isinstance(value, bool)
        if scalar or (isinstance(value, str) and item is str):
            value = [value]  # one value for a list means that value everywhere
        elif (typing.get_origin(item) is list and isinstance(value, (list, tuple)) and value
              and not any(isinstance(v, (list, tuple)) for v in value)):
            value = [value]  # one [start, stop] for a list of them means that one
        if not isinstance(value, (list, tuple)):
            raise fail()
        return [_convert(v, item, f"{path}[{i}]", source) for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise fail()
    if tp is int:
        if isinstance(value, bool):
            raise fail()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise fail()
    if tp is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e3" as a string
            try:
                value = float(value)
            except ValueError:
                raise fail() from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail()
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise fail(" (finite)")
        return value
    if tp is str:
        if isinstance(value, str):
            return value
        raise fail()
    raise TypeError(f"unsupported field type {tp!r} at {path}")  # a schema bug, not a user error


def _check_minimum(value: Any, meta: dict[str, Any], path: str, source: str | None) -> None:
    minimum = meta.get("minimum")
    if minimum is None:
        return
    values = value if isinstance(value, list) else [value]
    for v in values:
        bad = v <= minimum if meta.get("exclusive") else v < minimum
        if bad:
            rel = ">" if meta.get("exclusive") else "≥"
            raise ConfigError(f"{_where(source)}{path} = {value!r} is invalid: must be {rel} {minimum:g}")


_HINTS_CACHE: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS_CACHE:
        _HINTS_CACHE[cls] = typing.get_type_hints(cls)
    return _HINTS_CACHE[cls]


def from_dict(cls: type, data: dict[str, Any] | None, source: str | None = None, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a (possibly partial) mapping, with conversion and per-field checks."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{_where(source)}{prefix or 'the configuration'} must be a mapping, got {data!r}")
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{_where(source)}unknown key {path!r}{hint}; allowed keys: {', '.join(fields)}"
            )
        converted = _convert(value, hints[key], path, source)
        _check_minimum(converted, dict(fields[key].metadata), path, source)
        kwargs[key] = converted
    return cls(**kwargs)


def to_dict(obj: Any) -> dict[str, Any]:
    """The dataclass as nested plain data (YAML/JSON ready)."""
    return dataclasses.asdict(obj)


Check = Callable[["Config", str], None]
_CHECKS: dict[str, list[Check]] = {}


def register_check(scope: str) -> Callable[[Check], Check]:
    """Decorator: ``check(cfg, where)`` runs for every configuration of ``scope`` and raises :class:`ConfigError`.

    Scopes: ``"model"`` and ``"task"`` (run by :func:`load_config`; the check returns early when the configuration
    is not its model kind or task) and ``"backend:<name>"`` (run by :func:`check_backend`). ``where`` is the
    ``"file: "`` prefix of every message (empty without a file).
    """

    def add(check: Check) -> Check:
        _CHECKS.setdefault(scope, []).append(check)
        return check

    return add


def _run_checks(cfg: Config, scope: str, source: str | None) -> None:
    for check in _CHECKS.get(scope, []):
        check(cfg, _where(source))


def check_backend(cfg: Config, backend: str, source: str | None = None) -> None:
    """Run the checks that backend ``backend`` registered (before it simulates ``cfg``)."""
    _run_checks(cfg, f"backend:{backend}", source)


def choice_error(where: str, key: str, value: Any, allowed: typing.Iterable[str], context: str = "") -> ConfigError:
    """The one-line error of a value outside a registry's choices, with the closest match."""
    names = sorted(allowed)
    close = difflib.get_close_matches(str(value), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}{key} = {value!r} is not allowed{context}; allowed: {', '.join(names)}{hint}")


def validate_dataclass(cfg: Config, source: str | None = None) -> Config:
    """Cross-field checks of a whole :class:`Config` (generic ones here, then the registered model and task
    checks); raises ConfigError naming the key."""
    w = _where(source)
    layers = cfg.network.layers
    if len(layers) < 2:
        raise ConfigError(f"{w}network.layers = {layers!r} is invalid: need at least an input and an output layer")
    for i, n in enumerate(layers):
        if n < 1:
            raise ConfigError(f"{w}network.layers[{i}] = {n!r} is invalid: layer sizes must be ≥ 1")
    for name in ("init_forward_range", "init_feedback_range"):
        rng = getattr(cfg.network, name)
        if rng and (len(rng) != 2 or rng[0] >= rng[1]):
            raise ConfigError(f"{w}network.{name} = {rng!r} is invalid: expected [low, high] with low < high")
    _run_checks(cfg, "model", source)
    _run_checks(cfg, "task", source)
    return cfg


# ----------------------------------------------------------------------------------------------------------------
# overrides and files


class YamlLoader(yaml.SafeLoader):
    """YAML with the numbers of YAML 1.2 (``1e6`` is a float, not a string) and no duplicate keys (a repeated key
    or section is an error instead of silently replacing the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (the first would be silently replaced)", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


YamlLoader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def yaml_load(text: str) -> Any:
    """Parse ``text`` with :class:`YamlLoader`."""
    return yaml.load(text, Loader=YamlLoader)  # noqa: S506 (a SafeLoader)


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``"a.b=c"`` into the key path and a YAML-parsed value (``3`` → int, ``[1,2]`` → list, ``x`` → str)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is invalid: expected KEY=VALUE, e.g. plasticity.eta_bw=20")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} is invalid: the key is empty")
    try:
        value = yaml_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def apply_overrides(data: dict[str, Any], overrides: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    """Return a copy of nested ``data`` with dotted-key overrides applied (before validation)."""
    data = copy.deepcopy(data)
    if not overrides:
        return data
    items = overrides.items() if isinstance(overrides, dict) else (parse_override(o) for o in overrides)
    for key, value in items:
        parts = key.split(".")
        node = data
        for part in parts[:-1]:
            nxt = node.setdefault(part, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {key!r} is invalid: {part!r} is not a section")
            node = nxt
        node[parts[-1]] = value
    return data


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"{path}: no such configuration file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory, not a configuration file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not a text file (byte {exc.start} is not UTF-8); expected a YAML configuration") \
            from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    try:
        data = yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: malformed YAML{where}: {problem}") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; a configuration names at least its task and network "
                          "(see models/)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    data.pop("provenance", None)
    return data


def load_config(
    source: str | Path | dict[str, Any] | Config,
    overrides: dict[str, Any] | list[str] | None = None,
) -> Config:
    """Load and validate a configuration.

    ``source`` is a YAML path, a nested mapping or a :class:`Config`; ``overrides`` maps dotted keys to values
    (``{"plasticity.eta_bw": 20}``) or is a list of ``"key=value"`` strings as given to ``--set``.
    """
    if isinstance(source, Config):
        data, where = to_dict(source), None
    elif isinstance(source, dict):
        data, where = source, None
    else:
        path = Path(source)
        data, where = _read_yaml(path), str(path)
    data = apply_overrides(data, overrides)
    cfg = from_dict(Config, data, source=where)
    return validate_dataclass(cfg, source=where)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def provenance() -> dict[str, Any]:
    """Package version and git commit (when the package runs from a git checkout)."""
    return {"neurofa_version": __version__, "git_commit": _git_commit()}


def dump_config(cfg: Any, extra: dict[str, Any] | None = None) -> str:
    """YAML text of a configuration dataclass, with a ``provenance`` section (version, commit, extras)."""
    data = to_dict(cfg)
    data["provenance"] = {**provenance(), **(extra or {})}
    return yaml.safe_dump(data, sort_keys=False)


def layer_values(values: list[float], n: int) -> list[float]:
    """Broadcast a one-value list to ``n`` per-layer values."""
    return list(values) * n if len(values) == 1 else list(values)
