"""Dense loops, threads, single precision and direct re-runs of the standalone programs (neurofa.spiking.kernels,
neurofa.spiking.program).

One 100-100-10 network (its W₁ of 10,000 synapses is split over threads) is built four times: with neurofa's dense
loops (the default), with Brian2's own loops, with 2 threads and in single precision.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from neurofa.circuit import circuit_task, initial_weights
from neurofa.config import ConfigError, load_config
from neurofa.spiking import kernels, program
from neurofa.spiking.program import run_program
from neurofa.spiking.structure import SpikingPlan

pytest.importorskip("brian2")

WIDE = {
    "name": "wide_kernels",
    "network": {"layers": [100, 100, 10], "self_predicting": True},
    "plasticity": {"feedback": "pal", "eta_fw": [0.01, 0.01], "eta_ip": [0.01], "eta_pi": [0.01], "tau_lo": 0.0},
    "task": {"name": "teacher", "n_train": 10, "n_test": 2, "t_pres": 50.0},
    "simulation": {"duration": 500.0, "record_interval": 50.0, "record_detail": True},
    "spiking": {"device": "cpp_standalone", "report": False, "t_pres": 50.0, "nu_max": 400.0},
}


def _run(cfg: object, stock: bool = False, directory: Path | None = None) -> object:
    """Monitor output of seed 3; ``stock``: from a program with Brian2's own synapse loops, built in
    ``directory``."""
    plan = SpikingPlan.of(cfg)
    data = circuit_task(cfg, 3)
    structure = plan.structure(data)
    values = plan.values(structure, data, initial_weights(cfg, [3]), 0, 3)
    if not stock:
        return program.run_seed(cfg, structure, values)
    from neurofa.spiking import device

    assert directory is not None
    original = device._dense_projections
    device._dense_projections = lambda *a: {}  # type: ignore[assignment]
    try:
        built = device.build(structure, values, directory)
    finally:
        device._dense_projections = original
    return run_program(cfg, built, directory, structure, values)[0]


def _spike_counts(out: object) -> np.ndarray:
    return np.concatenate([v[-1] for (g, var), v in out.layers.items() if var == "n_spk"])  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def dense() -> object:
    return _run(load_config(WIDE))


def test_dense_loops_compute_brian2s_loops_to_rounding_with_the_same_spikes(dense: object,
                                                                             tmp_path_factory: object) -> None:
    stock = _run(load_config(WIDE), stock=True, directory=tmp_path_factory.mktemp("stock"))  # type: ignore[attr-defined]
    np.testing.assert_array_equal(_spike_counts(dense), _spike_counts(stock))
    for name, w in stock.weights.items():  # type: ignore[attr-defined]
        np.testing.assert_allclose(dense.weights[name], w, rtol=1e-11, atol=1e-13)  # type: ignore[attr-defined]
    for key, v in stock.layers.items():  # type: ignore[attr-defined]
        np.testing.assert_allclose(dense.layers[key], v, rtol=1e-10, atol=1e-11)  # type: ignore[attr-defined]


def test_two_threads_give_the_one_thread_result_bitwise(dense: object) -> None:
    if program.available_cores() < 2:
        pytest.skip("needs 2 cores")
    threaded = _run(load_config(WIDE, {"spiking.threads": 2}))
    for name, w in dense.weights.items():  # type: ignore[attr-defined]
        np.testing.assert_array_equal(threaded.weights[name], w)  # type: ignore[attr-defined]
    for key, v in dense.layers.items():  # type: ignore[attr-defined]
        np.testing.assert_array_equal(threaded.layers[key], v)  # type: ignore[attr-defined]


def test_two_threads_in_chunks_give_the_run_in_one_piece() -> None:
    """Each chunk starts from the state the previous one wrote. With a double-buffered trace, the values are in the
    second buffer after an odd number of steps (here 3 presentations of 501 steps per chunk) and must be copied
    back into Brian2's own buffer, which Brian2 writes and frees."""
    if program.available_cores() < 2:
        pytest.skip("needs 2 cores")
    odd = {"name": "odd_chunks", "network": {"layers": [100, 100, 4]},
           "task": {"name": "backprojection", "n_train": 10, "t_pres": 50.1},
           "simulation": {"duration": 501.0, "record_interval": 50.1, "record_detail": True},
           "plasticity": {"feedback": "pal", "eta_fw": [0.0], "eta_ip": [0.0], "eta_bw": [500.0]},
           "spiking": {"device": "cpp_standalone", "report": False, "sigma": 6.0, "threads": 2}}
    whole = _run(load_config(odd))
    chunked_cfg = load_config(odd, {"simulation.checkpoint_interval": 150.3})
    plan = SpikingPlan.of(chunked_cfg)
    assert plan.structure(circuit_task(chunked_cfg, 3)).chunk_pres == 3
    chunked = _run(chunked_cfg)
    for name, w in whole.weights.items():  # type: ignore[attr-defined]
        np.testing.assert_array_equal(chunked.weights[name], w)  # type: ignore[attr-defined]
    for key, v in whole.layers.items():  # type: ignore[attr-defined]
        np.testing.assert_array_equal(chunked.layers[key], v)  # type: ignore[attr-defined]


def _program_directory(cfg: object) -> Path:
    plan = SpikingPlan.of(cfg)
    data = circuit_task(cfg, 3)
    structure = plan.structure(data)
    return program.program_for(cfg, structure, plan.values(structure, data, initial_weights(cfg, [3]), 0, 3))[1]


def test_single_precision_follows_double_to_float_rounding(dense: object) -> None:
    single = _run(load_config(WIDE, {"spiking.precision": "single"}))
    # the float32 program flushes subnormals to zero (gcc's crtfastmath.o, linked with -ffast-math, sets FTZ/DAZ at
    # start-up); the double program keeps IEEE subnormals and with them its bitwise results
    if shutil.which("nm"):
        symbols = {precision: subprocess.run(["nm", str(_program_directory(load_config(
            WIDE, {"spiking.precision": precision})) / "main")], capture_output=True, text=True).stdout
            for precision in ("single", "double")}
        assert "set_fast_math" in symbols["single"] and "set_fast_math" not in symbols["double"]
    assert single.weights["W1"].dtype == np.float32  # type: ignore[attr-defined]
    counts, counts64 = _spike_counts(single), _spike_counts(dense)
    # a spike moves only where a probability lands within float rounding of its uniform draw
    assert np.mean(counts != counts64) < 0.05, np.mean(counts != counts64)
    for name, w in dense.weights.items():  # type: ignore[attr-defined]
        rms = np.sqrt(np.mean((single.weights[name] - w) ** 2))  # type: ignore[attr-defined]
        assert rms < 1e-3 * np.ptp(w[0]) + 1e-6, (name, rms)


def test_a_new_process_reruns_the_build_without_brian2(dense: object, tmp_path: Path) -> None:
    script = f"""
import json, sys
import numpy as np
from neurofa.circuit import circuit_task, initial_weights
from neurofa.config import load_config
from neurofa.spiking import program
from neurofa.spiking.structure import SpikingPlan
cfg = load_config(json.loads({json.dumps(json.dumps(WIDE))}))
plan = SpikingPlan.of(cfg)
data = circuit_task(cfg, 3)
structure = plan.structure(data)
out = program.run_seed(cfg, structure, plan.values(structure, data, initial_weights(cfg, [3]), 0, 3))
np.save({str(tmp_path / 'w.npy')!r}, out.weights["W1"])
print(json.dumps({{"brian2": "brian2" in sys.modules, "builds": program.stats()["builds"]}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts == {"brian2": False, "builds": 0}
    np.testing.assert_array_equal(np.load(tmp_path / "w.npy"), dense.weights["W1"])  # type: ignore[attr-defined]


def test_threads_beyond_the_cores_are_refused() -> None:
    cfg = load_config(WIDE, {"spiking.threads": program.available_cores() + 1})
    with pytest.raises(ConfigError, match=r"spiking.threads = \d+ is too many"):
        _run(cfg)


def test_threads_need_the_standalone_device() -> None:
    with pytest.raises(ConfigError, match="spiking.threads = 2 is not allowed with spiking.device = 'runtime'"):
        from neurofa.config import check_backend

        check_backend(load_config(WIDE, {"spiking.threads": 2, "spiking.device": "runtime"}), "spiking")


def test_rewrites_touch_only_the_dense_projections_and_refuse_unknown_code() -> None:
    p = kernels.DenseProjection("nfabc_W1", 3, 2)
    other = "void _run_nfabc_P0_stateupdater_codeobject() { for(int _idx=0; _idx<_N; _idx++) {} }"
    assert kernels.rewrite("code_objects/nfabc_P0_stateupdater_codeobject.cpp", other, {"nfabc_W1": p}) == other
    with pytest.raises(RuntimeError, match="unexpected form"):
        kernels.rewrite("code_objects/nfabc_W1_stateupdater_codeobject.cpp", "void _run_x() {}", {"nfabc_W1": p})
    with pytest.raises(RuntimeError, match="unexpected form"):
        kernels.rewrite("code_objects/nfabc_W1_summed_variable_v_bas_post_codeobject.cpp", "int x;",
                        {"nfabc_W1": p})


DECAY = """#include <vector>
std::vector<double> x_values(5, 1.0);
namespace brian { double* _array_P0_x = x_values.data(); }
void _run_P0_stateupdater_codeobject()
{
    using namespace brian;
    double* __restrict  _ptr_array_P0_x = _array_P0_x;
    const int _N = 5;
    const double _lio_1 = -0.5;
    for(int _idx=0; _idx<_N; _idx++)
    {
        double x = _ptr_array_P0_x[_idx];
        x = (_lio_1 * x) + x;
        _ptr_array_P0_x[_idx] = x;
    }
}
"""


def test_a_state_update_is_double_buffered_only_in_the_plain_form(tmp_path: Path) -> None:
    """All reads of the array before its one write, all in the one loop over the cells: the write goes to a second
    buffer, which then becomes the array, and the file defines the function that prefetches that buffer. Anything
    else is left alone (None)."""
    out = kernels.double_buffered(DECAY, "P0_x")
    assert out is not None and "_neurofa_out_P0_x[_idx] = x;" in out and "_ptr_array_P0_x[_idx] = x" not in out
    assert out.index("_array_P0_x = _neurofa_out_P0_x;") > out.index("_neurofa_out_P0_x[_idx] = x;")
    assert re.search(r"// neurofa: double-buffered\s*}\s*$", out)  # after the loop, not in it
    compiler = shutil.which("g++")
    if compiler is not None:  # three decays by half, alternating buffers, with the prefetch between them; at the
        # end (an odd count: the array is the second buffer) the values go back into the array's own buffer
        main = ("#include <cstdio>\nint main()\n{\n    for (int k = 0; k < 3; k++)\n    {\n"
                f"        {kernels.prefetch_function('P0_x')}();\n        _run_P0_stateupdater_codeobject();\n"
                "    }\n    const bool second = brian::_array_P0_x != x_values.data();\n"
                f"    {kernels.restore_function('P0_x')}();\n"
                "    for (int i = 0; i < 5; i++)\n        std::printf(\"%g \", brian::_array_P0_x[i]);\n"
                "    return !second || brian::_array_P0_x != x_values.data();\n}\n")
        (tmp_path / "decay.cpp").write_text(out + main)
        subprocess.run([compiler, "-O2", str(tmp_path / "decay.cpp"), "-o", str(tmp_path / "decay")], check=True)
        done = subprocess.run([str(tmp_path / "decay")], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout.split()) == (0, ["0.125"] * 5)
    read_after_write = DECAY.replace("_ptr_array_P0_x[_idx] = x;", "_ptr_array_P0_x[_idx] = x;\n"
                                     "        const double y = _ptr_array_P0_x[_idx];")
    neighbour = DECAY.replace("double x = _ptr_array_P0_x[_idx];", "double x = _ptr_array_P0_x[(_idx + 1) % _N];")
    outside = DECAY.replace("    }\n}", "    }\n    _ptr_array_P0_x[0] = 0.0;\n}")
    for source in (read_after_write, neighbour, outside):
        assert kernels.double_buffered(source, "P0_x") is None
    assert kernels.double_buffered(DECAY, "P0_v") is None


SPIKE_TRIGGERED = """#include <cstdio>
#include <vector>
struct Queue
{
    std::vector<int> spiking;
    std::vector<int>* peek() { return &spiking; }
};
Queue nfabc_W1_post;
std::vector<int> post_of(6 * 5);
std::vector<double> w(6 * 5), learn(6);
void _run_nfabc_W1_post_codeobject()
{
    int* __restrict _ptr_array_nfabc_W1__synaptic_post = post_of.data();
    double* __restrict _ptr_array_nfabc_W1_w = w.data();
    double* __restrict _ptr_array_nfabc_P1_learn = learn.data();
    const double _lio_1 = 0.5;
    {
    std::vector<int> *_spiking_synapses = nfabc_W1_post.peek();
    const int _num_spiking_synapses = _spiking_synapses->size();

    {
        for(int _spiking_synapse_idx=0;
            _spiking_synapse_idx<_num_spiking_synapses;
            _spiking_synapse_idx++)
        {
            const size_t _idx = (*_spiking_synapses)[_spiking_synapse_idx];
            const size_t _vectorisation_idx = _idx;
            const int _postsynaptic_idx = _ptr_array_nfabc_W1__synaptic_post[_idx];
            double w = _ptr_array_nfabc_W1_w[_idx];
            w += _lio_1 * (_ptr_array_nfabc_P1_learn[_postsynaptic_idx] * (double)(_idx % 5));
            _ptr_array_nfabc_W1_w[_idx] = w;
        }
    }
    }
}
int main(int argc, char** argv)
{
    for (int k = 0; k < 30; k++)
        post_of[k] = k / 5;
    for (int i = 0; i < 6; i++)
        learn[i] = 1.0 + i;
    const int cells[][3] = {{1, 4, 5}, {0, 2, 3}, {5, -1, -1}, {-1, -1, -1}};
    std::vector<double> expected(30, 0.0);
    for (int step = 0; step < 400; step++)
    {
        nfabc_W1_post.spiking.clear();
        for (int c : cells[step % 4])
            for (int j = 0; c >= 0 && j < 5; j++)
            {
                nfabc_W1_post.spiking.push_back(c * 5 + j);
                expected[c * 5 + j] += 0.5 * (learn[c] * j);
            }
        if (argc > 1 && step == 3)  // a list that is not whole rows
            nfabc_W1_post.spiking.push_back(7);
        _run_nfabc_W1_post_codeobject();
        JOIN
    }
    for (int k = 0; k < 30; k++)
        if (w[k] != expected[k])
        {
            std::printf("synapse %d: %g, not %g\\n", k, w[k], expected[k]);
            return 2;
        }
    std::printf("ok\\n");
    return 0;
}
"""


def test_the_spike_triggered_update_is_split_by_rows_only_with_threads(tmp_path: Path, monkeypatch: object) -> None:
    """With threads, each spiking cell's row of synapses is updated by Brian2's own per-synapse code, on the thread
    that owns the row; the program stops if the list of spiking synapses is not made of whole rows. One thread,
    or a loop that draws random numbers, keeps Brian2's loop."""
    monkeypatch.setattr(kernels, "PARALLEL_MIN_SYNAPSES", 30)  # type: ignore[attr-defined]
    p = kernels.DenseProjection("nfabc_W1", 5, 6)
    name = "code_objects/nfabc_W1_post_codeobject.cpp"
    assert kernels.rewrite(name, SPIKE_TRIGGERED, {"nfabc_W1": p}, threads=1) == SPIKE_TRIGGERED
    drawing = SPIKE_TRIGGERED.replace("w += _lio_1", "w += _rand(_vectorisation_idx) * _lio_1")
    assert kernels.spike_triggered(drawing, p, threads=2) == drawing
    with pytest.raises(RuntimeError, match="unexpected form"):
        kernels.spike_triggered(SPIKE_TRIGGERED.replace(".peek()", ".front()"), p, threads=2)
    rewritten = kernels.rewrite(name, SPIKE_TRIGGERED, {"nfabc_W1": p}, threads=2)
    assert "neurofa::RowPool::get().post(" in rewritten and "// neurofa: layout 6 x 5" in rewritten
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++")
    from neurofa.spiking import schedule

    (tmp_path / schedule.HEADER).write_text(schedule.row_pool_header(2))
    (tmp_path / "post.cpp").write_text(rewritten.replace("JOIN", "neurofa::RowPool::get().join();"))
    subprocess.run([compiler, "-O2", "-std=c++11", "-pthread", "-I", str(tmp_path), str(tmp_path / "post.cpp"),
                    "-o", str(tmp_path / "post")], check=True)
    done = subprocess.run([str(tmp_path / "post")], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stdout
    broken = subprocess.run([str(tmp_path / "post"), "broken"], capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "nfabc_W1: the spiking synapses are not whole rows" in broken.stderr


def test_small_projections_stay_on_one_thread() -> None:
    small = kernels.DenseProjection("a", 10, 10)
    large = kernels.DenseProjection("b", 100, 100)
    assert not kernels._parallel(small, 2) and not kernels._parallel(large, 1) and kernels._parallel(large, 2)
    assert large.n_pre * large.n_post >= kernels.PARALLEL_MIN_SYNAPSES > small.n_pre * small.n_post


def test_a_relative_build_dir_is_resolved_before_the_program_runs_in_it(tmp_path: Path, monkeypatch: object) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[attr-defined]
    cfg = load_config(WIDE, {"spiking.build_dir": "builds"})
    plan = SpikingPlan.of(cfg)
    data = circuit_task(cfg, 0)
    structure = plan.structure(data)
    found = []
    monkeypatch.setattr(program, "_PROGRAMS", {})  # type: ignore[attr-defined]
    monkeypatch.setattr(program.Program, "load",  # type: ignore[attr-defined]
                        classmethod(lambda cls, d, key: found.append(d) or "manifest"))
    _, directory = program.program_for(cfg, structure, plan.values(structure, data, initial_weights(cfg, [0]), 0, 0))
    assert directory.is_absolute() and directory == tmp_path / "builds" / structure.key and found == [directory]


def test_the_benchs_dense_loop_ceiling_computes_the_projection_at_every_thread_count(tmp_path) -> None:
    """``scripts/bench_scale.py`` bounds the 2-thread speed-up by timing the dense loops alone (``CEILING_C``): the
    program must do the work it claims, the same at 1 and 2 threads as the numpy loops of the same update."""
    import importlib.util
    import shutil

    compiler = shutil.which("gcc")
    if compiler is None:
        pytest.skip("no gcc")
    path = Path(__file__).resolve().parents[1] / "scripts" / "bench_scale.py"
    spec = importlib.util.spec_from_file_location("bench_scale", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    (tmp_path / "dense.c").write_text(bench.CEILING_C)
    subprocess.run([compiler, "-O3", "-ffast-math", "-fopenmp", str(tmp_path / "dense.c"), "-o",
                    str(tmp_path / "dense")], check=True)
    n_post, n_pre, steps = 13, 29, 50
    v0 = [float(subprocess.run([str(tmp_path / "dense"), str(n_post), str(n_pre), str(steps), str(n)],
                               capture_output=True, text=True, check=True).stdout.split()[1]) for n in (1, 2)]
    w = 1e-3 * (np.arange(n_post * n_pre) % 7).reshape(n_post, n_pre)
    x, post, v = 1e-3 * np.arange(n_pre), 0.5 + 1e-3 * np.arange(n_post), np.zeros(n_post)
    for _ in range(steps):
        w += np.outer(1e-7 * (post - v), x)
        v = 1e-3 * (w @ x)
    assert v0[0] == v0[1]  # each row is computed by the same code whichever thread runs it
    assert v0[0] == pytest.approx(v[0], rel=1e-12)


def _overlaps(source: str, job: str, before: bool) -> set[str]:
    """The objects that may run beside the row job of ``job`` in a built program's ``network.cpp``."""
    pattern = rf"\s*if \(job == &_run_\w+_{job}_codeobject && {'' if before else '!'}before\)"
    line = next(line for line in source.splitlines() if re.match(pattern, line))
    return set(re.findall(r"f == &_run_\w+?_(\w+)_codeobject\b", line))


def test_the_step_overlaps_the_rows_with_the_random_numbers_but_not_with_what_they_depend_on() -> None:
    """In the 2-thread program of the wide network, the update of W₁ (reads P₁'s learning signal
    and P₀'s trace x, writes w) runs beside the Poisson input's thresholder (the random numbers), and is joined
    before the spike-triggered update of W₁, the reset of P₀ (x jumps), P₁'s stored expressions and W₁'s monitor.
    The sum of W₁ x into v_bas starts ahead of P₁'s stored expressions, which read the old v_bas (the join
    commits the new one), but not ahead of P₀'s state update, which changes x."""
    if program.available_cores() < 2:
        pytest.skip("needs 2 cores")
    source = (_program_directory(load_config(WIDE, {"spiking.threads": 2})) / "network.cpp").read_text()
    update = _overlaps(source, "W1_stateupdater", before=False)
    assert {"P0_spike_thresholder", "P1_spike_thresholder"} <= update
    assert not {"W1_post", "P0_spike_resetter", "P1_subexpression_update", "mon_W1",
                "W1_summed_variable_v_bas_post"} & update
    summed = "W1_summed_variable_v_bas_post"
    assert {"P1_subexpression_update", "P0_subexpression_update"} <= _overlaps(source, summed, before=True)
    assert "P0_stateupdater" not in _overlaps(source, summed, before=True)
    assert not {"P1_subexpression_update", "P0_spike_resetter", "W1_post"} & _overlaps(source, summed, before=False)
    # P0's state update writes x into a second buffer (kernels.double_buffered), so after the sum's turn it runs
    # beside the sum, which reads the x it was given; P0's reset writes x in place and waits
    assert "P0_stateupdater" in _overlaps(source, summed, before=False)
    updater = next((_program_directory(load_config(WIDE, {"spiking.threads": 2})) / "code_objects").glob(
        "*_P0_stateupdater_codeobject.cpp")).read_text()
    assert "double-buffered" in updater
    # its second buffer is fetched for writing at the end of every step, once every job is joined
    assert re.search(r"neurofa_prefetch_\w+_P0_x\(\);", source[source.index("no job outlives its step"):])


def test_the_jobs_of_the_wide_projection_queue_behind_each_other() -> None:
    """In the 2-thread program of the wide network, W₁'s three jobs chain (``schedule.may_chain``): the sum of
    W₁ x, the update of W₁ and its spike-triggered update (now a row job) queue behind each other, each row on one
    thread, so the worker goes from one to the next without waiting for the main thread to join."""
    if program.available_cores() < 2:
        pytest.skip("needs 2 cores")
    directory = _program_directory(load_config(WIDE, {"spiking.threads": 2}))
    source = (directory / "network.cpp").read_text()
    chained = set(re.findall(r"if \(first == &_run_\w+?_(W1_\w+?)_codeobject && second == &_run_\w+?_(W1_\w+?)"
                             r"_codeobject\) return true;", source))
    summed = "W1_summed_variable_v_bas_post"
    assert {(summed, "W1_stateupdater"), ("W1_stateupdater", "W1_post"), (summed, "W1_post")} <= chained
    spike_triggered = next((directory / "code_objects").glob("*_W1_post_codeobject.cpp")).read_text()
    assert "// neurofa: layout 100 x 100" in spike_triggered and "neurofa::RowPool::get().post(" in spike_triggered
