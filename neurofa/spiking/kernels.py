r"""Dense loops for the all-to-all projections of Brian2's generated standalone code (pure text, no Brian2).

Brian2 treats every ``Synapses`` object as a sparse list: each synapse k carries its pre- and postsynaptic indices,
and two loops run over the list every time step:

- the *summed variable* (a dendritic potential, e.g. v_bas_i = Σ_j W_ij x_j) adds each synapse's term to
  ``target[post[k]]``. Consecutive synapses hit the same target, so every addition waits for the previous store
  (store-to-load forwarding): measured 73 % of the run time of a 784-100-10 network;
- the *state update* of the clock-driven plasticity reads the post- and presynaptic variables through the index
  arrays, which keeps the compiler from vectorising it.

neurofa's projections are dense, in row-major (post × pre) order (:func:`neurofa.spiking.network.build_circuit`):
synapse k = i·n_pre + j. The rewrites below replace both loops of such an object by loops over (i, j) that compute
the same per-synapse expressions:

- :func:`dense_summed` sums each target's terms in a register, over the contiguous row of synapses i·n_pre + j;
- :func:`dense_state_update` runs the same per-synapse code with i and j as loop counters: the postsynaptic values
  are loop-invariant and the presynaptic ones contiguous, so the compiler vectorises it. Each synapse's update is
  independent of the others, so the order of the loop does not matter.

The arithmetic is the equations' own, but Brian2 compiles with ``-ffast-math``, so the compiler may associate a
sum or a product differently in the new loops: the vectorised sum of a row adds its terms in another order, and
Brian2's original code already reassociates ``(−dt η)((λ φ̂) x)`` as ``w − (λ φ̂)(x dt η)``. Results therefore
agree with Brian2's own loops to rounding (measured: relative 1e-13 on dendritic potentials after 5000 steps of
a 784-100-10 network) and the spikes are the same draws (a spike changes only if a probability lands within
rounding of its uniform number); ``tests/test_kernels.py`` checks both.

With ``spiking.threads`` > 1, the two loops of every projection of at least :data:`PARALLEL_MIN_SYNAPSES`
synapses become row jobs of :mod:`neurofa.spiking.schedule`: worker threads compute their rows while the main thread
goes on with the rest of the time step (the neuron groups, the spike propagation and the random numbers, which stay
on the main thread in Brian2's order). Each target is summed, and each synapse updated, by the same code whichever
thread runs it, so a run gives the same result, bitwise, for every thread count (``tests/test_kernels.py``).
:func:`double_buffered` rewrites a neuron group's state update to write an array such a job reads into a second
buffer, so that it may run beside the job, and :func:`spike_triggered` makes a row job of the projection's update
at its postsynaptic spikes (``on_post``), which keeps Brian2's per-synapse code and loop and queues behind the
weight update (:func:`neurofa.spiking.schedule.may_chain`).

:func:`rewrite` applies them to the files of the dense projections and leaves every other file unchanged; it
raises if Brian2's code no longer has the expected form (the Brian2 version is part of every build key).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from neurofa.spiking import schedule

__all__ = ["DenseProjection", "dense_summed", "dense_state_update", "spike_triggered", "double_buffered",
           "prefetch_function", "restore_function", "rewrite", "PARALLEL_MIN_SYNAPSES"]

#: the smallest projection whose loops are split over threads
PARALLEL_MIN_SYNAPSES = 8192


@dataclass(frozen=True)
class DenseProjection:
    """A ``Synapses`` object (Brian2 name) whose synapse k connects pre j = k mod n_pre to post i = k div n_pre."""

    name: str
    n_pre: int
    n_post: int


_SUMMED_LOOP = re.compile(
    r"(?P<pragma>[ \t]*#pragma omp [^\n]*\n)?"
    r"[ \t]*for\(int _idx=0; _idx<[^;]+; _idx\+\+\)\s*\{\s*// vector code\s*"
    r"const size_t _vectorisation_idx = _idx;\n(?P<body>.*?)\n"
    r"[ \t]*(?P<target>\w+)\[(?P<index>\w+)\[_idx\]\] \+= _synaptic_var;\s*\}",
    re.S,
)
_STATE_LOOP = re.compile(
    r"(?P<pragma>[ \t]*#pragma omp [^\n]*\n)?"
    r"[ \t]*for\(int _idx=0; _idx<_N; _idx\+\+\)\s*\{\s*// vector code\s*"
    r"const size_t _vectorisation_idx = _idx;\n",
)
_PRE_INDEX = re.compile(r"const int32_t _presynaptic_idx = \w+\[_idx\];")
_POST_INDEX = re.compile(r"const int32_t _postsynaptic_idx = \w+\[_idx\];")


def _serial_only(body: str, p: DenseProjection, threads: int) -> None:
    """A loop that draws random numbers must stay on the main thread (the program has one generator)."""
    if _parallel(p, threads) and re.search(r"\b_randn?\(", body):
        raise RuntimeError(f"{p.name}: a synaptic loop that draws random numbers cannot be split over threads")


def _dense_indices(body: str) -> str:
    body = _PRE_INDEX.sub("const int32_t _presynaptic_idx = _j;", body)
    return _POST_INDEX.sub("const int32_t _postsynaptic_idx = _i;", body)


def _parallel(p: DenseProjection, threads: int) -> bool:
    """Whether ``p``'s loops are row jobs (:mod:`neurofa.spiking.schedule`): with more than one thread, for
    projections of at least :data:`PARALLEL_MIN_SYNAPSES` synapses (handing rows over costs about a microsecond)."""
    return threads > 1 and p.n_pre * p.n_post >= PARALLEL_MIN_SYNAPSES


def _rows(loop: Callable[[str, str], str], p: DenseProjection, threads: int, commit: str = "") -> str:
    """``loop(begin, end)``, a loop over the postsynaptic cells ``_i`` from ``begin`` to ``end``: over every row, or
    (:func:`_parallel`) as a row job over the rows its thread is given, with ``commit`` run at its join."""
    if not _parallel(p, threads):
        return loop("0", str(p.n_post))
    return schedule.row_job(loop("_row_begin", "_row_end"), p.n_post, commit=commit, width=p.n_pre)


_ZEROED = re.compile(r"[ \t]*for \(int _target_idx=0; _target_idx<_target_size; _target_idx\+\+\)\s*\{\s*"
                     r"(?P<target>\w+)\[_target_idx \+ 0\] = 0;\s*\}\n")


def dense_summed(source: str, p: DenseProjection, threads: int = 1) -> str:
    r"""Rewrite the summed-variable loop of ``p``: target_i = Σ_j term(i·n_pre + j), one accumulator per target
    (which starts at the target's value, zero), vectorised over j by the compiler.

    As a row job (:func:`_parallel`), the rows sum into a buffer of the job's own, which the join copies into the
    target (every target is overwritten): until then the target keeps the value that objects before the summed
    variable's turn read (P₁'s stored expressions), so the job may start ahead of them."""
    match = _SUMMED_LOOP.search(source)
    if match is None:
        raise RuntimeError(f"{p.name}: Brian2's summed-variable loop has an unexpected form")
    _serial_only(match["body"], p, threads)
    body, target, head = _dense_indices(match["body"]), match["target"], source[:match.start()]
    if not _parallel(p, threads):
        start, store, prologue, commit = f"{target}[_i]", f"{target}[_i]", "", ""
    else:
        zeroed = _ZEROED.search(head)
        if zeroed is None or zeroed["target"] != target:
            raise RuntimeError(f"{p.name}: Brian2's summed variable no longer zeroes its target as expected")
        head = head[:zeroed.start()] + head[zeroed.end():]
        start, store = "0", "_neurofa_sum[_i]"
        prologue = f"""    static std::vector<_acc_t> _neurofa_sum_values({p.n_post});
    _acc_t* const _neurofa_sum = _neurofa_sum_values.data();
"""
        commit = f"""    for (int _i = 0; _i < {p.n_post}; _i++)
        {target}[_i] = _neurofa_sum[_i];"""

    def loop(begin: str, end: str) -> str:
        return f"""    for (int _i = {begin}; _i < {end}; _i++)
    {{
        const int _n_pre = {p.n_pre};
        _acc_t _acc = {start};
        for (int _j = 0; _j < _n_pre; _j++)
        {{
            const size_t _idx = (size_t)_i * _n_pre + _j;
            const size_t _vectorisation_idx = _idx;
{body}
            _acc += _synaptic_var;
        }}
        {store} = _acc;
    }}"""

    block = f"""    {{
    typedef std::decay<decltype({target}[0])>::type _acc_t;
{prologue}{_rows(loop, p, threads, commit)}
    }}"""
    return head + block + source[match.end():]


def dense_state_update(source: str, p: DenseProjection, threads: int = 1) -> str:
    """Rewrite the state-update loop of ``p`` into loops over the postsynaptic cell i and the presynaptic cell j
    (synapse i·n_pre + j), with the index arrays' reads replaced by i and j."""
    match = _STATE_LOOP.search(source)
    if match is None:
        raise RuntimeError(f"{p.name}: Brian2's synaptic state-update loop has an unexpected form")
    rest = source[match.end():]
    end = _matching_brace(rest)
    _serial_only(rest[:end], p, threads)
    body = _dense_indices(rest[:end])

    def loop(begin: str, stop: str) -> str:
        return (f"    for (int _i = {begin}; _i < {stop}; _i++)\n"
                f"    for (int _j = 0; _j < {p.n_pre}; _j++)\n    {{\n"
                f"        const size_t _idx = (size_t)_i * {p.n_pre} + _j;\n"
                "        const size_t _vectorisation_idx = _idx;\n" + body + "}")

    return source[:match.start()] + _rows(loop, p, threads) + rest[end + 1:]


_SPIKE_LOOP = re.compile(
    r"[ \t]*std::vector<int> \*_spiking_synapses = (?P<queue>\w+)\.peek\(\);\s*"
    r"const int _num_spiking_synapses = _spiking_synapses->size\(\);\s*\{\s*"
    r"for\(int _spiking_synapse_idx=0;\s*_spiking_synapse_idx<_num_spiking_synapses;\s*_spiking_synapse_idx\+\+\)\s*"
    r"\{\s*const size_t _idx = \(\*_spiking_synapses\)\[_spiking_synapse_idx\];\s*"
    r"const size_t _vectorisation_idx = _idx;\n")


def spike_triggered(source: str, p: DenseProjection, threads: int = 1) -> str:
    """Rewrite the spike-triggered update of ``p`` by its postsynaptic spikes (``on_post``, e.g. W₁'s
    w += η/ν_max · λ x at every spike of P₁) as a row job (:func:`_parallel`), chained behind the projection's
    weight update (:func:`neurofa.spiking.schedule.may_chain`): the synapses of a cell that spiked, its row, are
    updated by the thread that owns the row, beside the rest of the step.

    Brian2's loop runs over the list of the step's spiking synapses, which for a dense projection without delays
    is the whole row i·n_pre … (i + 1)·n_pre − 1 of each spiking cell i, in order; the job runs the same loop, with
    the same per-synapse code, over the rows of its thread. The program stops with a message if the list is not
    made of whole rows. One thread, or a loop that draws random numbers, keeps Brian2's loop."""
    match = _SPIKE_LOOP.search(source)
    if match is None:
        raise RuntimeError(f"{p.name}: Brian2's spike-triggered loop has an unexpected form")
    end = match.end() + _matching_brace(source[match.end():])  # the loop's closing brace
    close = source.index("}", end + 1)  # the block around the loop
    body = source[match.end():end]
    if not _parallel(p, threads) or re.search(r"\b_randn?\(", body):
        return source
    n_pre, queue = p.n_pre, match["queue"]

    def loop(begin: str, stop: str) -> str:
        return f"""    for (int _block = 0; _block < _num_spiking_synapses; _block += {n_pre})
    {{
        const int _row = (*_spiking_synapses)[_block] / {n_pre};
        if (_row < {begin} || _row >= {stop})
            continue;
        for(int _spiking_synapse_idx=_block; _spiking_synapse_idx<_block + {n_pre}; _spiking_synapse_idx++)
        {{
            const size_t _idx = (*_spiking_synapses)[_spiking_synapse_idx];
            const size_t _vectorisation_idx = _idx;
{body}
        }}
    }}"""

    check = f"""    std::vector<int> *_spiking_synapses = {queue}.peek();
    const int _num_spiking_synapses = _spiking_synapses->size();
    // neurofa: whole rows of {n_pre} synapses, one per spiking cell (a dense projection without delays)
    bool _neurofa_rows_whole = _num_spiking_synapses % {n_pre} == 0;
    for (int _block = 0; _neurofa_rows_whole && _block < _num_spiking_synapses; _block += {n_pre})
        _neurofa_rows_whole = (*_spiking_synapses)[_block] % {n_pre} == 0
            && (*_spiking_synapses)[_block + {n_pre} - 1] == (*_spiking_synapses)[_block] + {n_pre} - 1;
    if (!_neurofa_rows_whole)
    {{
        std::fprintf(stderr, "neurofa: {p.name}: the spiking synapses are not whole rows\\n");
        std::exit(1);
    }}
"""
    return source[:match.start()] + check + _rows(loop, p, threads) + source[close + 1:]


_NEURON_LOOP = "for(int _idx=0; _idx<_N; _idx++)"


def prefetch_function(name: str) -> str:
    """The function that :func:`double_buffered` defines to prefetch the second buffer of the array ``name``."""
    return f"neurofa_prefetch_{name}"


def restore_function(name: str) -> str:
    """The function that :func:`double_buffered` defines to give the array ``name`` its own buffer back."""
    return f"neurofa_restore_{name}"


def double_buffered(source: str, name: str) -> str | None:
    """``source``, a neuron group's state update, writing the array ``name`` into a second buffer which then
    becomes the array (the two pointers are swapped), or None where the code has not the plain form this needs:
    one loop over the N cells that reads ``name[_idx]`` and then writes it.

    With threads, a row job reads the array it was given when it was posted, so a state update that comes after
    the job in the step (P₀'s decay of x, after the sum of W₁ x) may run beside it: the job reads the old values,
    as it would have before the update, and the update writes the new ones elsewhere. The arithmetic is unchanged.

    The second buffer fills whole cache lines of its own (64-byte aligned). The file also defines
    :func:`prefetch_function`, which fetches it into the calling core's cache for writing; the step calls it once
    every job has been joined (:func:`neurofa.spiking.schedule.network_patches`), so that the update, a few
    microseconds later, does not wait for the worker's copies of the lines to be invalidated one store at a time
    (it read them as the array the step before). And :func:`restore_function`, called when the run's loop ends,
    copies the values back into Brian2's own buffer if the array is the second one at that moment, so that Brian2
    writes and frees the buffer it allocated.
    """
    pointer = f"_ptr_array_{name}"
    declaration = re.search(rf"^[ \t]*(?P<type>[\w:]+)\*\s*__restrict\s+{pointer} = _array_{name};[ \t]*$",
                            source, re.M)
    if declaration is None or source.count(_NEURON_LOOP) != 1:
        return None
    start = source.index(_NEURON_LOOP)
    brace = source.index("{", start)
    end = brace + 1 + _matching_brace(source[brace + 1:]) + 1  # after the loop's closing brace
    body = source[brace:end]
    outside = [m for m in re.finditer(rf"\b{pointer}\b", source)
               if not (declaration.start() <= m.start() < declaration.end() or brace < m.start() < end)]
    writes = [m.start() for m in re.finditer(rf"\b{pointer}\[_idx\] = ", body)]
    reads = [m.start() for m in re.finditer(rf"\b{pointer}\[_idx\](?! = )", body)]
    if outside or len(writes) != 1 or len(re.findall(rf"\b{pointer}\b", body)) != len(reads) + 1 \
            or (reads and max(reads) > writes[0]):
        return None  # used outside the loop or not as [_idx], written more than once, or read after its write
    function = re.search(r"^void _run_\w+\(\)\s*$", source[:start], re.M)
    if function is None:
        return None
    kind, out = declaration["type"], f"_neurofa_out_{name}"
    spare = f"_neurofa_spare_{name}"
    loop_line = source.rindex("\n", 0, start) + 1
    body = body.replace(f"{pointer}[_idx] = ", f"{out}[_idx] = ")
    own = f"_neurofa_own_{name}"
    prefetch = f"""#include <cstdlib>
static {kind}* {own} = nullptr;  // neurofa: the second buffer of {name}, whole cache lines
static {kind}* {spare} = nullptr;  // the buffer the next update writes ({own} or Brian2's)
static int {spare}_size = 0;
void {prefetch_function(name)}()
{{
    for (int _k = 0; _k < {spare}_size; _k += 64 / (int)sizeof({kind}))
        __builtin_prefetch({spare} + _k, 1, 3);
}}
void {restore_function(name)}()
{{
    using namespace brian;
    if (_array_{name} != {own})
        return;
    for (int _k = 0; _k < {spare}_size; _k++)
        {spare}[_k] = {own}[_k];
    _array_{name} = {spare};
    {spare} = {own};
}}
"""
    allocate = (f"    if ({own} == nullptr)\n    {{\n"
                f"        {own} = static_cast<{kind}*>(aligned_alloc(64, (_N * sizeof({kind}) + 63) / 64 * 64));\n"
                f"        {spare} = {own};\n        {spare}_size = _N;\n    }}\n")
    return (source[:function.start()] + prefetch + source[function.start():loop_line] + allocate
            + f"    {kind}* __restrict {out} = {spare};\n"
            + source[loop_line:brace] + body
            + f"\n    {spare} = _array_{name};\n    _array_{name} = {out};  // neurofa: double-buffered\n"
            + source[end:])


def _matching_brace(text: str) -> int:
    """The index of the brace closing a block whose opening brace precedes ``text``."""
    depth = 1
    for pos, char in enumerate(text):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return pos
    raise RuntimeError("unbalanced braces in Brian2's generated code")


def rewrite(filename: str, source: str, projections: dict[str, DenseProjection], threads: int = 1) -> str:
    """``source`` of the generated file ``filename`` (``code_objects/<name>.cpp``) with the dense loops of the
    projection it belongs to, if any (and, for a row job, the pool's header included)."""
    stem = filename.rsplit("/", 1)[-1]
    if not stem.endswith("_codeobject.cpp"):
        return source
    for name, p in projections.items():
        if stem.startswith(f"{name}_summed_variable_"):
            return _included(dense_summed(source, p, threads), p, threads)
        if stem == f"{name}_stateupdater_codeobject.cpp":
            return _included(dense_state_update(source, p, threads), p, threads)
        if stem == f"{name}_post_codeobject.cpp":
            return _included(spike_triggered(source, p, threads), p, threads)
    return source


def _included(source: str, p: DenseProjection, threads: int) -> str:
    return f'#include "{schedule.HEADER}"\n' + source if _parallel(p, threads) else source
