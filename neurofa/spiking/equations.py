r"""Brian2 equation strings of the spiking microcircuit's neurons (``docs/science.md`` §3.1; Sacramento2018, Max2024).

Pure strings: nothing here imports Brian2. Voltages are dimensionless, times carry Brian units. The synapses'
equations belong to the plasticity rules (:mod:`neurofa.model.rules`).

Every cell (input, pyramidal, interneuron) fires as an inhomogeneous Poisson process of rate ν_max φ(ŭ), with the
prospective voltage ŭ = u_eff (Haider2021; the somatic Euler variable is not needed because ŭ is what the rate
reads), implemented as the threshold ``rand() < nu_max*phi(u_eff)*dt``. Its synaptic trace obeys τ_s ẋ = −x and
jumps by 1/(ν_max τ_s) per spike, so E[x] follows x̄ ← x̄ + (dt/τ_s)(φ(ŭ) − x̄): the rate backend's ``tau_syn``
filter. Dendritic potentials are weighted sums of traces, one ``(summed)`` target per projection:

- pyramidal ℓ: v_bas = Σ W x_{ℓ−1}; v_api = v_api_B + v_api_I with v_api_B = Σ B x_{ℓ+1}, v_api_I = Σ B^{PI} x^I_ℓ;
  u_eff = [g_bas v_bas + g_api (v_api + ξ)] / (g_l + g_bas + g_api); ξ the PAL noise (OU, τ_ξ, σ):
  dξ = −ξ dt/τ_ξ + σ √(dt/τ_ξ) N(0,1), the same discretisation as the rate backend; every hidden and output cell
  also carries the high-passed trace x^HP, τ_HP ẋ^HP = τ_HP ẋ − x^HP (it jumps with x), which PAL's rule reads;
- output: u_eff = [g_bas v_bas + n(t) g_ntgt u_tgt(t)] / (g_l + g_bas + n(t) g_ntgt), n(t) the nudging gate
  (with ``simulation.filter_target`` u_tgt is replaced by its trace x_tgt, τ_s ẋ_tgt = u_tgt − x_tgt);
- interneuron ℓ: v_den = Σ W^{IP} x_ℓ, u_eff = [g_den v_den + g_nI ŭ^P_{ℓ+1}] / (g_l + g_den + g_nI), with ŭ^P_{ℓ+1}
  a linked variable (one-to-one nudging without synapses).

Plasticity is always on, gated only by λ(t) = ``learn`` = gate(t) f(t): the learning gate (0 during test
presentations) times the annealing factor f(t) = 1/(1 + t/T_η) of :func:`neurofa.circuit.learning_rate_factor`
(``anneal_rate`` = 1/T_η, 0 = off; t = t_run = (Brian2's time step + ``step_offset``)·dt,
``step_offset`` being the first step of the chunk of a run cut into chunks: the product Brian2's own clock forms, so
a chunked run anneals bitwise as a run in one piece).

Scheduling (Brian2's default schedule): ``(constant over dt)`` subexpressions (u_eff, φ(v̂), v_api, gates) are
evaluated at the start of a step from the dendritic sums of the previous step, summed variables are refreshed in
the ``groups`` slot, spikes are drawn in ``thresholds`` and traces jump in ``resets``. Compared with the rate
backend's ``scheme='instant'`` each layer therefore has one extra dt of latency (0.1 ms against τ_s ≥ 1 ms);
stationary rates and all plasticity expectations are identical.

Accumulators (``A_*``, n_spk) integrate per-cell quantities; the monitors sample them coarsely and window means
are differences divided by the window (``record_detail``).

Only what something reads is computed: :func:`without_unused` drops the ``(constant over dt)`` subexpressions that
no equation, threshold, reset, synapse, link or monitor reads, e.g. φ(v̂) (``phi_hat``) of a group whose incoming
weights do not learn, or the gate λ(t) of a group without plastic inputs. A subexpression is recomputed for every
cell at every step (dropping φ(v̂), an exponential per cell, made the PAL Fig 3 network 1.10× faster); dropping
one that nothing reads changes no other value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "phi_expr",
    "input_equations",
    "hidden_equations",
    "output_equations",
    "interneuron_equations",
    "threshold",
    "reset",
    "population_equations",
    "population_draw",
    "population_reset",
    "POPULATION_THRESHOLD",
    "expected_trace",
    "linked",
    "without_unused",
    "identifiers",
]

_SUBEXPRESSION = re.compile(r"^\s*(?P<name>[A-Za-z_]\w*)\s*=\s*(?P<rhs>.+?)\s*:[^:]*$")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def identifiers(code: str) -> set[str]:
    """Every name in ``code`` (variables, functions and units alike)."""
    return set(_IDENTIFIER.findall(code))


def without_unused(equations: str, read: Iterable[str]) -> str:
    """``equations`` without the subexpressions (``name = expr : unit``) that neither the other equations nor
    ``read`` (the names that code outside the equations reads: threshold, reset, synapses, links, monitors) need.

    Differential equations and parameters all stay; a subexpression stays if a kept line reads it, so a chain such
    as ``learn`` → ``t_run`` goes as a whole. Lines keep their order."""
    lines = equations.splitlines()
    subexpressions = {}
    needed = set(read)
    for k, line in enumerate(lines):
        m = _SUBEXPRESSION.match(line)
        if m:
            subexpressions[m["name"]] = (k, identifiers(m["rhs"]))
        elif "=" in line:  # a differential equation: its right-hand side is always computed
            needed |= identifiers(line.split("=", 1)[1].rsplit(":", 1)[0])
    queue = [name for name in subexpressions if name in needed]
    while queue:
        for name in subexpressions[queue.pop()][1] - needed:
            needed.add(name)
            if name in subexpressions:
                queue.append(name)
    dropped = {k for name, (k, _) in subexpressions.items() if name not in needed}
    return "\n".join(line for k, line in enumerate(lines) if k not in dropped) + ("\n" if equations.endswith("\n")
                                                                                 else "")

_PHI = {
    "logistic": "1.0/(1.0 + exp(-({u})))",
    "relu": "clip({u}, 0, inf)",
    "softplus": "log(1.0 + exp({u}))",
}


def phi_expr(activation: str, u: str) -> str:
    """Brian2 expression of φ(u) for a non-negative transfer function."""
    return _PHI[activation].format(u=u)


_TRACE = """
nu_max : Hz (shared, constant)
tau_s : second (shared, constant)
dx/dt = -x/tau_s : 1
n_spk : 1
"""

_GATES = """
anneal_rate : Hz (shared, constant)
step_offset : 1 (shared, constant)
t_run = (t_in_timesteps + step_offset)*dt : second (constant over dt)
learn = gate_learn(t)/(1.0 + t_run*anneal_rate) : 1 (constant over dt)
"""


def expected_trace() -> str:
    r"""The trace's expectation given the cell's rate, τ_s ẋ_r = φ(ŭ) − x_r (``spiking.pre_signal = 'rate'``).

    x_r is what the trace x would be without shot noise (E[x | rate history] = x_r). As the presynaptic factor of the
    forward, W^{IP} and B^{PI} rules it removes the errors-in-variables bias of reading a noisy trace in both the
    dendritic prediction and the factor: E[(φ(ŭ) − φ(v̂)) x_j] contains −ρ φ' (g_bas/(g_l+g_bas)) w_j Var(x_j),
    a ridge of strength Var(x) = φ/(2 ν_max τ_s) (``docs/science.md`` §3.6), while the shot noise
    x − x_r is independent of x_r. The dendrites still read x."""
    return "dxr/dt = (rate - xr)/tau_s : 1\n"


def threshold(regular: bool = False) -> str:
    """Poisson spiking at rate ν_max φ(ŭ) (Bernoulli per step, ν_max dt ≤ 0.5 is validated), or, for
    ``regular`` input cells, a spike whenever the phase ∫ ν_max x dt crosses 1."""
    return "phase >= 1.0" if regular else "rand() < nu_max*rate*dt"


def reset(high_pass: bool, regular: bool = False) -> str:
    """The trace jump 1/(ν_max τ_s) (and the high-passed trace's identical jump), plus the spike counter."""
    code = "x += 1.0/(nu_max*tau_s)\nn_spk += 1"
    if high_pass:
        code += "\nxhp += 1.0/(nu_max*tau_s)"
    if regular:
        code += "\nphase -= 1.0"
    return code


#: the unit's event when at least one of its population's cells fired this step
POPULATION_THRESHOLD = "n_fired > 0.5"


def population_equations() -> str:
    r"""The variables of a unit represented by a population of ``pop_size`` = N cells (``network.population``):
    the number of its cells that fired in this step, ``n_fired``."""
    return "pop_size : 1 (shared, constant)\nn_fired : 1\n"


def population_draw() -> str:
    r"""The spikes of a population of N cells in one step, drawn before the thresholds.

    Each of the N cells fires with probability p = ν_max φ(ŭ) dt (the single cell's Bernoulli step) and the cells
    are independent given ŭ, so the number that fire is Binomial(N, p), drawn by inverting its distribution
    function at one uniform number (:data:`neurofa.spiking.network.POPULATION_SPIKES`)."""
    return "n_fired = population_spikes(rand(), pop_size, nu_max*rate*dt)"


def population_reset(high_pass: bool) -> str:
    r"""The trace jumps of a population: the population's trace is the mean of its cells' traces, so it jumps by
    n_fired/(N ν_max τ_s); ``n_spk`` counts spikes per cell (n_fired/N), so rates read from it are per cell."""
    jump = "n_fired/(pop_size*nu_max*tau_s)"
    code = f"x += {jump}\nn_spk += n_fired/pop_size"
    if high_pass:
        code += f"\nxhp += {jump}"
    return code


def input_equations(regular: bool = False) -> str:
    r"""Input cells: rate ν_max x(t) from the presentation TimedArray ``stim(t, i)``; ``rng_seed`` is read by
    the standalone code inserted after the run arguments (per-run seeding).

    ``regular`` (``spiking.input_spikes = 'regular'``): an integrate-and-fire encoder, θ̇ = ν_max x, a spike and
    θ ← θ − 1 when θ ≥ 1 (θ = ``phase``), with a random initial phase per cell. Same mean rate and trace mean as
    the Poisson encoder, but the trace ripple has variance ≈ 1/(12 (ν_max τ_s)²) instead of the shot noise
    x/(2 ν_max τ_s) (0.0008 against 0.025 at x = ½, 500 Hz, 20 ms): a stimulus coded with the precision of its
    spike timing.
    """
    eqs = _TRACE + """
rate = stim(t, i) : 1 (constant over dt)
rng_seed : integer (shared, constant)
"""
    if regular:
        eqs += "dphase/dt = nu_max*rate : 1\n"
    return eqs


def hidden_equations(activation: str, detail: bool) -> str:
    """Hidden pyramidal cells with basal and apical compartments, PAL noise and high-passed trace."""
    phi_u = phi_expr(activation, "u_eff")
    phi_hat = phi_expr(activation, "g_bas*v_bas/(g_l + g_bas + g_api)")
    eqs = _TRACE + _GATES + f"""
g_l : 1 (shared, constant)
g_bas : 1 (shared, constant)
g_api : 1 (shared, constant)
tau_xi : second (shared, constant)
tau_hp : second (shared, constant)
sigma : 1 (shared, constant)
v_bas : 1
v_api_B : 1
v_api_I : 1
v_api = v_api_B + v_api_I : 1 (constant over dt)
u_eff = (g_bas*v_bas + g_api*(v_api + noise))/(g_l + g_bas + g_api) : 1 (constant over dt)
rate = {phi_u} : 1 (constant over dt)
phi_hat = {phi_hat} : 1 (constant over dt)
dnoise/dt = -noise/tau_xi + sigma*sqrt(1.0/tau_xi)*xi : 1
dxhp/dt = -x/tau_s - xhp/tau_hp : 1
dA_vapi2/dt = v_api**2/ms : 1
"""
    if detail:
        eqs += """
dA_vbas/dt = v_bas/ms : 1
dA_vapi/dt = v_api/ms : 1
dA_rate/dt = rate/ms : 1
"""
    return eqs


def output_equations(activation: str, target: bool, detail: bool, target_trace: bool = False) -> str:
    """Output pyramidal cells: basal input, nudged towards ``target(t, i)`` while the nudging gate is on.

    ``target_trace``: the nudging potential is the target low-passed like a synaptic trace,
    τ_s dx_tgt/dt = u_tgt − x_tgt (``simulation.filter_target``); the loss still compares with u_tgt itself."""
    phi_u = phi_expr(activation, "u_eff")
    phi_hat = phi_expr(activation, "g_bas*v_bas/(g_l + g_bas)")
    eqs = _TRACE + _GATES + f"""
g_l : 1 (shared, constant)
g_bas : 1 (shared, constant)
v_bas : 1
rate = {phi_u} : 1 (constant over dt)
phi_hat = {phi_hat} : 1 (constant over dt)
dxhp/dt = -x/tau_s - xhp/tau_hp : 1
tau_hp : second (shared, constant)
dA_vhat/dt = g_bas*v_bas/(g_l + g_bas)/ms : 1
"""
    if target:
        eqs += """
g_ntgt : 1 (shared, constant)
u_tgt = target(t, i) : 1 (constant over dt)
nudge = gate_nudge(t) : 1 (constant over dt)
u_eff = (g_bas*v_bas + nudge*g_ntgt*{nudging})/(g_l + g_bas + nudge*g_ntgt) : 1 (constant over dt)
dA_loss/dt = 0.5*(g_bas*v_bas/(g_l + g_bas) - u_tgt)**2/ms : 1
""".format(nudging="x_tgt" if target_trace else "u_tgt")
        if target_trace:
            eqs += "dx_tgt/dt = (u_tgt - x_tgt)/tau_s : 1\n"
    else:
        eqs += "\nu_eff = g_bas*v_bas/(g_l + g_bas) : 1 (constant over dt)\n"
    if detail:
        eqs += "\ndA_vbas/dt = v_bas/ms : 1\ndA_rate/dt = rate/ms : 1\n"
    return eqs


def interneuron_equations(activation: str, detail: bool) -> str:
    """Interneurons: dendrite from their layer's pyramidal cells, soma nudged by ŭ of the next layer."""
    phi_u = phi_expr(activation, "u_eff")
    phi_hat = phi_expr(activation, "g_den*v_den/(g_l + g_den)")
    return _TRACE + _GATES + ("dA_rate/dt = rate/ms : 1\n" if detail else "") + f"""
g_l : 1 (shared, constant)
g_den : 1 (shared, constant)
g_nI : 1 (shared, constant)
v_den : 1
u_nudge : 1 (linked)
u_eff = (g_den*v_den + g_nI*u_nudge)/(g_l + g_den + g_nI) : 1 (constant over dt)
rate = {phi_u} : 1 (constant over dt)
phi_hat = {phi_hat} : 1 (constant over dt)
"""


def linked(variable: str) -> str:
    """A linked variable of a group (one-to-one coupling without synapses, e.g. the interneurons' nudging)."""
    return f"{variable} : 1 (linked)\n"
