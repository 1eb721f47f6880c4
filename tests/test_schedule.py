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
    std::printf("ok\n");
    return 0;
}
"""


@pytest.mark.parametrize("threads", [2, 3])
def test_the_pool_computes_every_row_exactly_once(tmp_path: Path, threads: int) -> None:
    compiler = shutil.which("g++")
    if compiler is None:
        pytest.skip("no g++")
    (tmp_path / schedule.HEADER).write_text(schedule.row_pool_header(threads))
    (tmp_path / "pool.cpp").write_text(POOL_TEST)
    subprocess.run([compiler, "-O2", "-std=c++11", "-pthread", "-I", str(tmp_path), str(tmp_path / "pool.cpp"),
                    "-o", str(tmp_path / "pool")], check=True)
    done = subprocess.run([str(tmp_path / "pool")], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stdout
