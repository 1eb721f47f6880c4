"""The threaded step (neurofa.spiking.schedule): what a code object may write, which objects overlap a row job
(before its turn and after it), and the pool of worker threads itself with its commits (compiled here and run at 2
and 3 threads). ``tests/test_kernels.py`` checks
the step of a built 2-thread program."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from neurofa.spiking import schedule


def _fp(code: str) -> tuple[set[str], set[str]]:
    fp = schedule.footprint(code)
    return set(fp.uses), set(fp.writes)


@pytest.mark.parametrize("code, uses, writes", [
    ("const double v = _ptr_array_P1_v[_idx];", {"P1_v"}, set()),
    ("_ptr_array_P1_v[_idx] = v;", {"P1_v"}, {"P1_v"}),
    ("_ptr_array_P1_v[_idx] == v;", {"P1_v"}, set()),
    ("_ptr_array_P1_v[_ptr_array_P1_idx[_k]] += 1.0;", {"P1_v", "P1_idx"}, {"P1_v"}),
    ("++_ptr_array_P1_count[0];", {"P1_count"}, {"P1_count"}),
    ("_ptr_array_P1_count[0]--;", {"P1_count"}, {"P1_count"}),
    ("_dynamic_array_mon_t.push_back(t);", {"mon_t"}, {"mon_t"}),
    ("_dynamic_array_mon_v(_i, _j) = x;", {"mon_v"}, {"mon_v"}),
    ("const size_t _num = _dynamic_array_W_w.size();", {"W_w"}, set()),
    ("std::copy(src, src + 3, _ptr_array_P1_v);", {"P1_v"}, {"P1_v"}),
    ("double* q = &_ptr_array_P1_v[0];", {"P1_v"}, {"P1_v"}),
    ("double* __restrict  _ptr_array_P1_v = _array_P1_v;\nconst double v = _ptr_array_P1_v[0];", {"P1_v"}, set()),
    ("double* const _array_W_w = _dynamic_array_W_w.empty()? 0 : &_dynamic_array_W_w[0];", set(), set()),
    ("nfabc_W1_post.push(_ptr_array_P1__spikespace, 3);", {"nfabc_W1_post", "P1__spikespace"},
     {"nfabc_W1_post", "P1__spikespace"}),
    ("const char c = _rand(_vectorisation_idx) < p;", {"<random>"}, {"<random>"}),
])
def test_a_use_counts_as_a_write_unless_it_is_plainly_a_read(code: str, uses: set[str], writes: set[str]) -> None:
    assert _fp(code) == (uses, writes)


def _job(rows: str, commit: str = "") -> schedule.JobFootprint:
    post = "const double dt = _ptr_array_clock_dt[0];\n"
    return schedule.job_footprint(post + schedule.row_job(rows, 4, commit=commit))


def test_a_row_job_is_read_as_its_post_its_rows_and_its_commit() -> None:
    job = _job("    _buf[_i] = _ptr_array_W_w[_i] * _ptr_array_P0_x[_i];", "    _ptr_array_P1_v[_i] = _buf[_i];")
    assert (set(job.post.uses), set(job.rows.uses), set(job.rows.writes)) == ({"clock_dt"}, {"W_w", "P0_x"}, set())
    assert set(job.commit.writes) == set(job.writes) == {"P1_v"}


def test_an_object_overlaps_a_job_only_if_it_neither_touches_what_the_job_writes_nor_writes_what_it_reads() -> None:
    job = _job("    _ptr_array_W_w[_idx] = _ptr_array_W_w[_idx] + _ptr_array_P0_x[_j];")
    for before in (True, False):
        assert schedule.may_overlap(job, schedule.footprint("const double x = _ptr_array_P0_x[_idx];"), before)
        assert schedule.may_overlap(job, schedule.footprint("_ptr_array_P1_v[_idx] = _rand(_idx);"), before)
        assert not schedule.may_overlap(job, schedule.footprint("const double w = _ptr_array_W_w[_idx];"), before)
        assert not schedule.may_overlap(job, schedule.footprint("_ptr_array_P0_x[_idx] += 1.0;"), before)
    # the post (run ahead of an object it was hoisted past) reads dt: the object must not change it
    assert not schedule.may_overlap(job, schedule.footprint("_ptr_array_clock_dt[0] = 1.0;"), True)
    assert schedule.may_overlap(job, schedule.footprint("_ptr_array_clock_dt[0] = 1.0;"), False)


def test_what_the_join_commits_may_be_read_before_the_jobs_turn_but_not_after_it() -> None:
    """A summed variable's target keeps its old value until the join (which overwrites it): an object before the
    job's turn may read it (P₁'s stored expressions), one after must wait for the join."""
    job = _job("    _buf[_i] = _ptr_array_W_w[_i] * _ptr_array_P0_x[_i];", "    _ptr_array_P1_v[_i] = _buf[_i];")
    reads = schedule.footprint("const double v = _ptr_array_P1_v[_idx];")
    writes = schedule.footprint("_ptr_array_P1_v[_idx] = 0.0;")
    assert schedule.may_overlap(job, reads, True) and not schedule.may_overlap(job, reads, False)
    assert schedule.may_overlap(job, writes, True) and not schedule.may_overlap(job, writes, False)
    # a write through a second buffer (a double-buffered state update) may follow the job, not precede it
    swapped = schedule.Footprint(frozenset({"P0_x"}), frozenset({"P0_x"}), frozenset({"P0_x"}))
    assert schedule.may_overlap(job, swapped, False) and not schedule.may_overlap(job, swapped, True)
    # the weights the rows read may be read beside them, never written
    weights = schedule.footprint("_ptr_array_W_w[_idx] += 1.0;")
    assert not schedule.may_overlap(job, weights, True) and not schedule.may_overlap(job, weights, False)


def _rows_job(rows: str, commit: str = "", n_rows: int = 4, width: int = 8, post: str = "") -> schedule.JobFootprint:
    return schedule.job_footprint(post + schedule.row_job(rows, n_rows, commit=commit, width=width))


SUM = "    _buf[_i] += _ptr_array_W_w[_idx] * _ptr_array_P0_x[_j];"
UPDATE = "    _ptr_array_W_w[_idx] = _ptr_array_W_w[_idx] + _ptr_array_P1_l[_i] * _ptr_array_P0_x[_j];"


def test_the_jobs_of_one_projection_chain_when_they_share_only_their_own_synapses() -> None:
    """A job may queue behind another (the same rows per thread, row i of the second after row i of the first)
    if both have the same rows and what one writes and the other uses is used by both only at ``[_idx]``."""
    summed = _rows_job(SUM, "    _ptr_array_P1_v[_i] = _buf[_i];")
    update = _rows_job(UPDATE, post="const size_t _numw = _dynamic_array_W_w.size();\n")
    assert update.layout == "4 x 8" and update.row_local == {"W_w"} and summed.row_local == {"W_w"}
    assert update.post.sized == {"W_w"}  # its post reads only the length of w, which the rows cannot change
    assert schedule.may_chain(summed, update)
    # another layout, or no declared layout
    assert not schedule.may_chain(summed, _rows_job(UPDATE, width=9))
    assert not schedule.may_chain(summed, _rows_job(UPDATE, width=0))
    # a neighbour's weight: w is no longer used only at the row's own synapses
    neighbour = _rows_job(UPDATE.replace("_ptr_array_W_w[_idx] +", "_ptr_array_W_w[_idx + 1] +"))
    assert neighbour.row_local == frozenset() and not schedule.may_chain(summed, neighbour)
    # the first's commit writes what the second's rows read (v), or the second's post reads an element of w
    assert not schedule.may_chain(summed, _rows_job(UPDATE + "\n    const double v = _ptr_array_P1_v[_i];"))
    assert not schedule.may_chain(update, _rows_job(SUM, post="const double w0 = _ptr_array_W_w[0];\n"))
    # jobs that share nothing but what they read chain whatever they read
    assert schedule.may_chain(_rows_job("    _buf[_i] = _ptr_array_P0_x[_j];"), summed)


POOL_TEST = r"""
#include "neurofa_rows.h"
#include <cstdio>
#include <vector>
int main()
{
    // two jobs of n rows, each with its partition; every row of every job must be computed exactly once per post
    // (a plain, non-atomic increment), and the main thread must see it after the join
    const int sizes[] = {1, 7, 100};
    for (int n : sizes)
    {
        std::vector<long> a(n, 0), b(n, 0);
        long* pa = a.data();
        long* pb = b.data();
        long committed = 0, expected = 0;
        long* pc = &committed;
        std::function<void(int, int)> ja = [=](int s, int e) { for (int i = s; i < e; i++) pa[i] += 1; };
        std::function<void(int, int)> jb = [=](int s, int e) { for (int i = s; i < e; i++) pb[i] += i; };
        // the commit runs at the join, after every row: it must see all of them
        std::function<void()> cb = [=]() { for (int i = 0; i < n; i++) *pc += pb[i]; };
        neurofa::Partition pa_rows, pb_rows;
        volatile double serial = 0.0;
        for (int step = 0; step < 20000; step++)
        {
            neurofa::RowPool::get().post(&ja, n, &pa_rows);
            for (int k = 0; k < (step % 7) * 50; k++)
                serial = serial + k;  // the main thread's other work, of varying length
            neurofa::RowPool::get().join();
            neurofa::RowPool::get().post(&jb, n, &pb_rows, &cb);
            neurofa::RowPool::get().join();
            expected += (step + 1L) * n * (n - 1) / 2;
        }
        if (committed != expected)
        {
            std::printf("commit of %d rows: %ld, not %ld\n", n, committed, expected);
            return 1;
        }
        for (int i = 0; i < n; i++)
            if (a[i] != 20000 || b[i] != 20000L * i)
            {
                std::printf("row %d of %d: %ld %ld\n", i, n, a[i], b[i]);
                return 1;
            }
    }
    // three chained jobs: row i of b reads what row i of a wrote in the same round, and c what b wrote; the pool
    // gives b and c the split of a, so each thread computes a row of b after that row of a (the main thread
    // computes its rows only when it joins, after the workers may have done theirs)
    for (int n : sizes)
    {
        const long rounds = 20000;
        std::vector<long> a(n, 0), b(n, 0), c(n, 0);
        long* pa = a.data();
        long* pb = b.data();
        long* pc = c.data();
        std::function<void(int, int)> ja = [=](int s, int e) { for (int i = s; i < e; i++) pa[i] += 1; };
        std::function<void(int, int)> jb = [=](int s, int e) { for (int i = s; i < e; i++) pb[i] += pa[i]; };
        std::function<void(int, int)> jc = [=](int s, int e) { for (int i = s; i < e; i++) pc[i] += pb[i]; };
        neurofa::Partition pa_rows, pb_rows, pc_rows;
        pb_rows.main_rows = 0;  // ignored: a chained job takes the split of the job it follows
        pc_rows.main_rows = n;
        volatile double serial = 0.0;
        for (long step = 0; step < rounds; step++)
        {
            neurofa::RowPool::get().post(&ja, n, &pa_rows);
            neurofa::RowPool::get().chain();
            neurofa::RowPool::get().post(&jb, n, &pb_rows);
            for (int k = 0; k < (step % 5) * 40; k++)
                serial = serial + k;
            neurofa::RowPool::get().chain();
            neurofa::RowPool::get().post(&jc, n, &pc_rows);
            if (neurofa::RowPool::get().pending() != 3)
            {
                std::printf("%d jobs pending, not 3\n", neurofa::RowPool::get().pending());
                return 1;
            }
            if (step % 2)
                neurofa::RowPool::get().join_oldest();  // a join of the first job alone
            neurofa::RowPool::get().join();
        }
        for (int i = 0; i < n; i++)
            if (a[i] != rounds || b[i] != rounds * (rounds + 1) / 2 || c[i] != rounds * (rounds + 1) * (rounds + 2) / 6)
            {
                std::printf("chained row %d of %d: %ld %ld %ld\n", i, n, a[i], b[i], c[i]);
                return 1;
            }
    }
    std::printf("ok\n");
    return 0;
}
"""


@pytest.mark.parametrize("threads", [2, 3])
def test_the_pool_computes_every_row_exactly_once_and_chained_rows_in_order(tmp_path: Path, threads: int) -> None:
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++")
    (tmp_path / schedule.HEADER).write_text(schedule.row_pool_header(threads))
    (tmp_path / "pool.cpp").write_text(POOL_TEST)
    subprocess.run([compiler, "-O2", "-std=c++11", "-pthread", "-I", str(tmp_path), str(tmp_path / "pool.cpp"),
                    "-o", str(tmp_path / "pool")], check=True)
    done = subprocess.run([str(tmp_path / "pool")], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stdout
