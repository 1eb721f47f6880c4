r"""The time step of a threaded program: the rows of the wide projections on a pool of threads, overlapped with the
rest of the step (pure text, no Brian2).

A standalone program runs its code objects one after another in every time step, in Brian2's order. With
``spiking.threads`` = N > 1, the dense loops of every projection of at least
:data:`~neurofa.spiking.kernels.PARALLEL_MIN_SYNAPSES` synapses (:mod:`neurofa.spiking.kernels`) become *row
jobs*: the code object computes what its loop needs (the scalar code, the zeroed target of a summed variable),
hands the loop over postsynaptic rows to a pool of N − 1 worker threads (:data:`ROW_POOL_H`) and returns at once.
The main thread goes on with the following code objects of the step, the neuron groups, the Poisson input and the
random numbers among them, as long as they do not touch what the job touches, and joins the job (computes its own
share of the rows and waits for the workers) before the first object that does, before the next job and at the end
of the step.

So the work that stays on one thread overlaps the rows the workers compute, instead of adding to them
(Amdahl's law with the serial part hidden behind the parallel one). What may overlap is decided from the generated
code itself (:func:`footprint`, :func:`job_footprint`, :func:`may_overlap`): an object may run beside a job if it
neither reads nor writes an array the job writes and writes no array the job reads. A summed variable's job sums
into a buffer of its own, which its join copies into the target (the *commit*); until then the target keeps its old
value, so an object that comes before the job in Brian2's order may read it beside the job (P₁'s stored
expressions read the v_bas of the previous step while the new one is summed). Conversely, a neuron group's state
update that rewrites an array a job reads may write it to a second buffer that then becomes the array
(:func:`neurofa.spiking.kernels.double_buffered`; its footprint lists the array as ``swapped``): a job posted
before it keeps the array it was given, so the update may run beside it (P₀'s decay of x beside the sum of W₁ x).
Arrays are named in Brian2's code
as ``_ptr_array_X``, ``_array_X`` and ``_dynamic_array_X``; a use counts as a read only in the forms ``X[...]`` on
the right of an assignment, ``X.size()`` and ``X.empty()`` and the declarations of the pointers themselves, anything
else (an assignment, ``push_back``, ``resize``, an address or a pointer passed to a function) counts as a write.
Brian2 functions that a code object calls (TimedArrays, neurofa's progress line) read only constants.

A job may also start ahead of its turn, before object i, if it commutes with every object between i and itself:
more of the step then runs beside it. Only what commutes is reordered. The sum of W₁ x starts at the beginning of
the step and runs until the update of W₁ is posted, at its own turn; the update is joined before W₁'s
spike-triggered update.

The main thread computes the first m rows of a job, the workers share the rest equally. m is kept per job from one
step to the next and moves by one row towards balance after each join (one more if the main thread had to wait,
one fewer if the workers were done first), so each row stays with one thread, and in its cache. (Letting idle
threads take rows from each other balanced better but moved rows between cores, and the loops themselves became
slower than the waiting it saved: ``docs/science.md`` §3.8.) Each row is computed by the same code whichever thread
takes it, so a run gives the same result, bitwise, at every thread count, and the random numbers stay on the main
thread in Brian2's order (``tests/test_kernels.py``, ``tests/test_schedule.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["ROW_POOL_H", "HEADER", "POST", "ROWS", "COMMIT", "END", "row_pool_header", "Footprint",
           "footprint", "JobFootprint", "job_footprint", "may_overlap", "functions", "row_job", "network_patches"]

#: the file name of the pool in the build directory
HEADER = "neurofa_rows.h"
#: the call that posts a row job (a code object whose source contains it is a job)
POST = "neurofa::RowPool::get().post("

#: the pool of worker threads (C++11, header-only; ``NEUROFA_THREADS`` is the thread count, the main thread's
#: included). Synchronisation: the main thread writes the job (and everything the job reads) and then increments
#: ``sequence_`` (release); a worker that sees the new value (acquire) computes its range of rows and then
#: decrements ``active_`` (release); :func:`join` returns once ``active_`` is 0 (acquire), so the main thread sees
#: every row the workers wrote. A worker waits for the next job spinning, then yielding, then sleeping.
ROW_POOL_H = r"""// neurofa: rows of the wide projections on a pool of threads (neurofa/spiking/schedule.py)
#ifndef NEUROFA_ROWS_H
#define NEUROFA_ROWS_H
#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define NEUROFA_SPIN() _mm_pause()
#elif defined(__aarch64__)
#define NEUROFA_SPIN() asm volatile("yield")
#else
#define NEUROFA_SPIN() std::atomic_signal_fence(std::memory_order_seq_cst)
#endif

#define NEUROFA_THREADS @THREADS@

namespace neurofa {

// the rows of a job the main thread computes (the first main_rows; the workers share the rest equally), kept from
// one step to the next so that each row stays with one thread, in its cache
struct Partition
{
    int main_rows = -1;
};

class RowPool
{
public:
    static RowPool& get()
    {
        static RowPool* pool = new RowPool();  // never destroyed: the workers outlive main()
        return *pool;
    }

    // start computing rows [0, n) with rows(begin, end) on the workers, split by partition; the caller computes
    // its own rows when it joins, before it next touches the job's data, and then calls commit (if any), which
    // copies what the rows wrote to a private buffer into the arrays the rest of the program reads
    void post(const std::function<void(int, int)>* rows, int n, Partition* partition,
              const std::function<void()>* commit = nullptr)
    {
        join();
        if (partition->main_rows < 0 || partition->main_rows > n)
            partition->main_rows = n / NEUROFA_THREADS;
        rows_ = rows;
        commit_ = commit;
        partition_ = partition;
        const long main_rows = partition->main_rows, rest = n - main_rows, workers = NEUROFA_THREADS - 1;
        for (int t = 0; t <= NEUROFA_THREADS; t++)
            bounds_[t] = t == 0 ? 0 : (int)(main_rows + rest * (t - 1) / workers);
        active_.store(NEUROFA_THREADS - 1, std::memory_order_relaxed);
        sequence_.fetch_add(1, std::memory_order_release);
        pending_ = true;
    }

    // compute the main thread's rows and wait for the workers; then move the partition by one row towards
    // balance: the main thread takes one row more if it had to wait, one row less if the workers were done first
    void join()
    {
        if (!pending_)
            return;
        if (bounds_[1] > bounds_[0])
            (*rows_)(bounds_[0], bounds_[1]);
        if (active_.load(std::memory_order_acquire) != 0)
        {
            if (partition_->main_rows < bounds_[NEUROFA_THREADS])
                partition_->main_rows++;
            for (long spins = 0; active_.load(std::memory_order_acquire) != 0; spins++)
                pause(spins);
        }
        else if (partition_->main_rows > 0)
            partition_->main_rows--;
        pending_ = false;
        if (commit_)
            (*commit_)();
    }

private:
    alignas(64) std::atomic<unsigned long> sequence_;
    alignas(64) std::atomic<int> active_;
    alignas(64) const std::function<void(int, int)>* rows_ = nullptr;
    const std::function<void()>* commit_ = nullptr;
    Partition* partition_ = nullptr;
    int bounds_[NEUROFA_THREADS + 1];
    bool pending_ = false;

    // wait: spin for a few microseconds (a job or a join comes within one time step), then give the core to
    // another thread (more threads than free cores), and sleep once a worker has waited for a long time (spins < 0)
    static void pause(long spins)
    {
        if (spins < 0)
            std::this_thread::sleep_for(std::chrono::microseconds(100));
        else if (spins < 2000)
            NEUROFA_SPIN();
        else
            std::this_thread::yield();
    }

    RowPool() : sequence_(0), active_(0)
    {
        for (int t = 1; t < NEUROFA_THREADS; t++)
            std::thread(&RowPool::worker, this, t).detach();
    }

    void worker(int t)
    {
        unsigned long seen = 0;
        for (;;)
        {
            unsigned long now;
            for (long spins = 0; (now = sequence_.load(std::memory_order_acquire)) == seen; spins++)
                pause(spins < 1000000 ? spins : -1);
            seen = now;
            if (bounds_[t + 1] > bounds_[t])
                (*rows_)(bounds_[t], bounds_[t + 1]);
            active_.fetch_sub(1, std::memory_order_release);
        }
    }
};

}  // namespace neurofa
#endif
"""


def row_pool_header(threads: int) -> str:
    """:data:`ROW_POOL_H` for ``threads`` threads (the main thread's included)."""
    return ROW_POOL_H.replace("@THREADS@", str(int(threads)))


#: the comments that enclose, in a row job's source, the code computed beside the rest of the step (the rows) and
#: the code run at its join (the commit): :func:`job_footprint` reads them
ROWS, COMMIT, END = "// neurofa: rows", "// neurofa: commit", "// neurofa: end"


def row_job(loop: str, n_rows: int, indent: str = "    ", commit: str = "") -> str:
    """A C++ block that posts ``loop`` (a loop over ``_i`` from ``_row_begin`` to ``_row_end``, which captures the
    code object's local variables by value) as a row job over ``n_rows`` rows, with its own partition; ``commit``
    (statements) runs on the main thread at the job's join, after every row."""
    block = (f"{indent}static std::function<void(int, int)> _neurofa_rows;\n"
             f"{indent}static neurofa::Partition _neurofa_partition;\n"
             f"{indent}{ROWS}\n"
             f"{indent}_neurofa_rows = [=](int _row_begin, int _row_end)\n{indent}{{\n{loop}\n{indent}}};\n"
             f"{indent}{END}\n")
    if not commit:
        return block + f"{indent}{POST}&_neurofa_rows, {n_rows}, &_neurofa_partition);\n"
    return (block + f"{indent}static std::function<void()> _neurofa_commit;\n"
            f"{indent}{COMMIT}\n"
            f"{indent}_neurofa_commit = [=]()\n{indent}{{\n{commit}\n{indent}}};\n"
            f"{indent}{END}\n"
            f"{indent}{POST}&_neurofa_rows, {n_rows}, &_neurofa_partition, &_neurofa_commit);\n")


# ------------------------------------------------------------------------------------------------------------
# what a code object touches

_ARRAY = re.compile(r"(?<![\w])(&\s*)?(?:_ptr_array_|_dynamic_array_|_static_array_|_array_)(\w+)")
_POINTER_DECLARATION = re.compile(
    r"^[ \t]*(?:const\s+)?[\w:]+\s*\*\s*(?:const\s+|__restrict\s+)*(?:_ptr_array_|_array_)\w+\s*=[^;\n]*;[ \t]*$",
    re.M)
_OBJECT_CALL = re.compile(r"(?<![\w.>])([A-Za-z_]\w*)\s*(?:\.|->)\s*\w+\s*\(")
_RANDOM = re.compile(r"\b(?:_rand|_randn|_random_generators|rk_\w+)\b")
_FUNCTION = re.compile(r"^void (_run_\w+)\(\)\s*$", re.M)
_ASSIGNMENT = re.compile(r"\s*(?:[-+*/%|&^]|<<|>>)?=(?!=)|\s*(?:\+\+|--)")
_INCREMENTED = re.compile(r"(?:\+\+|--)\s*$")
_SIZE = re.compile(r"\.\s*(?:size|empty)\s*\(\s*\)")
_NON_SPACE = re.compile(r"\S")


@dataclass(frozen=True)
class Footprint:
    """The arrays (and other shared objects: spike queues, the random generator) a code object uses, and those it
    may write; ``swapped``, those of its writes that go to a second buffer which then becomes the array
    (:func:`neurofa.spiking.kernels.double_buffered`), so that a job posted before it keeps reading the old values."""

    uses: frozenset[str]
    writes: frozenset[str]
    swapped: frozenset[str] = frozenset()


def _subscript_end(text: str, start: int) -> int:
    """The index after the ``]`` that closes the ``[`` at ``start``."""
    depth = 0
    for pos in range(start, len(text)):
        depth += {"[": 1, "]": -1}.get(text[pos], 0)
        if depth == 0:
            return pos + 1
    raise ValueError("unbalanced brackets in generated code")


def footprint(source: str) -> Footprint:
    """What the code in ``source`` uses and may write, by the rules of the module docstring."""
    code = _POINTER_DECLARATION.sub("", source)
    uses: set[str] = set()
    writes: set[str] = set()
    for match in _ARRAY.finditer(code):
        name, following = match[2], _NON_SPACE.search(code, match.end())
        next_char = following.start() if following else len(code)
        uses.add(name)
        if match[1]:  # an address
            writes.add(name)
        elif code.startswith("[", next_char):
            end = _subscript_end(code, next_char)
            if _ASSIGNMENT.match(code, end) or _INCREMENTED.search(code, max(0, match.start() - 4), match.start()):
                writes.add(name)
        elif not _SIZE.match(code, next_char):
            writes.add(name)  # a pointer or container passed on, resized, appended to ...
    for match in _OBJECT_CALL.finditer(code):
        if not _ARRAY.fullmatch(match[1]) and match[1] not in ("std", "brian"):
            uses.add(match[1])
            writes.add(match[1])
    if _RANDOM.search(code):
        uses.add("<random>")
        writes.add("<random>")
    return Footprint(frozenset(uses), frozenset(writes))


@dataclass(frozen=True)
class JobFootprint:
    """What a row job touches: ``post``, the code that runs in the object's turn on the main thread (its scalar
    code); ``rows``, the code computed beside the rest of the step; and ``commit``, the copies made at the join
    into the arrays the rest of the program reads (a summed variable's target, :mod:`neurofa.spiking.kernels`),
    which therefore keep their old values until the join."""

    post: Footprint
    rows: Footprint
    commit: Footprint

    @property
    def writes(self) -> frozenset[str]:
        """Every array the job writes beside the step or at its join."""
        return self.rows.writes | self.commit.writes


def _regions(source: str) -> tuple[str, dict[str, str]]:
    """``source`` without its marked regions, and each region's text."""
    rest, regions = source, {ROWS: "", COMMIT: ""}
    for marker in regions:
        start = rest.find(marker)
        if start < 0:
            continue
        end = rest.index(END, start)
        regions[marker] = rest[start + len(marker):end]
        rest = rest[:start] + rest[end + len(END):]
    return rest, regions


def job_footprint(source: str) -> JobFootprint:
    """The :class:`JobFootprint` of a row job's source (:func:`row_job`)."""
    rest, regions = _regions(source)
    return JobFootprint(footprint(rest), footprint(regions[ROWS]), footprint(regions[COMMIT]))


def may_overlap(job: JobFootprint, other: Footprint, before: bool) -> bool:
    """Whether a code object with footprint ``other`` may run while a row job is computed, which comes ``before``
    it in Brian2's order (the job was posted ahead of its turn) or after it.

    After the job, ``other`` must not write what the rows read (unless through a second buffer: the rows keep the
    array they were given) and must not touch what they write or what the commit will write. Before the job, the
    post's code runs ahead of ``other``, so ``other`` must also not write what the post or the rows read nor touch
    what they write; but it may read or write the arrays that only the commit writes, as it would have before the
    job's turn (they keep their values until the join, which then overwrites them).
    """
    if not before:
        return not ((other.writes - other.swapped) & job.rows.uses or other.uses & job.writes)
    return not (other.writes & (job.post.uses | job.rows.uses) or other.uses & (job.post.writes | job.rows.writes))


def functions(source: str) -> list[str]:
    """The ``_run_...`` functions a generated code object file defines (the network calls them)."""
    return _FUNCTION.findall(source)


# ------------------------------------------------------------------------------------------------------------
# the network's step

_CALL = ("                if (func)  // code objects can be NULL in cases where we store just the clock\n"
         "                    func();\n")
_CALL_JOINED = """                if (func && neurofa_ran[i] != neurofa_step)  // (NULL: a clock without code)
                {
                    if (neurofa_job >= 0 && !neurofa_overlap[neurofa_job * neurofa_n + i])
                    {
                        neurofa::RowPool::get().join();
                        neurofa_job = -1;
                    }
                    const int early = neurofa_hoist[i];
                    if (neurofa_job < 0 && early >= 0 && curclocks.find(objects[early].first) != curclocks.end())
                    {
                        objects[early].second();  // posts its job now: it commutes with objects i to early - 1
                        neurofa_ran[early] = neurofa_step;
                        neurofa_job = early;
                    }
                    func();
                    if (neurofa_posts[i])
                        neurofa_job = (int)i;
                }
"""
_TICK = ("        for(std::set<Clock*>::iterator i=curclocks.begin(); i!=curclocks.end(); i++)\n"
         "            (*i)->tick();\n")
_LOOP = "    while(clock && clock->running() && !Network::_globally_stopped)\n"
_TABLES = """    // neurofa: which objects post a row job; which may run while the job of object j is computed (coming
    // before or after j in the step); and which job may be posted before object i, ahead of its turn (the next
    // job, if it commutes with the objects between)
    const size_t neurofa_n = objects.size();
    std::vector<char> neurofa_posts(neurofa_n), neurofa_overlap(neurofa_n * neurofa_n);
    for (size_t j = 0; j < neurofa_n; j++)
    {
        neurofa_posts[j] = neurofa_is_job(objects[j].second);
        for (size_t i = 0; i < neurofa_n; i++)
            neurofa_overlap[j * neurofa_n + i] = neurofa_may_overlap(objects[j].second, objects[i].second, i < j);
    }
    std::vector<int> neurofa_hoist(neurofa_n, -1);
    for (size_t i = 0; i < neurofa_n; i++)
    {
        size_t j = i;
        while (j < neurofa_n && !neurofa_posts[j])
            j++;
        bool commutes = j < neurofa_n && j > i;
        for (size_t k = i; commutes && k < j; k++)
            commutes = !objects[k].second || neurofa_overlap[j * neurofa_n + k];
        if (commutes)
            neurofa_hoist[i] = (int)j;
    }
    std::vector<long> neurofa_ran(neurofa_n, -1);
    long neurofa_step = 0;
    int neurofa_job = -1;
"""


def _table_functions(jobs: dict[str, JobFootprint], others: dict[str, Footprint]) -> str:
    names = sorted(set(jobs) | set(others))
    lines = [f'#include "{HEADER}"', "#include <vector>"] + [f"void {name}();" for name in names]
    lines.append("static bool neurofa_is_job(codeobj_func f)\n{")
    lines += [f"    if (f == &{name}) return true;" for name in sorted(jobs)]
    lines.append("    return false;\n}")
    lines.append("// whether f may run while the row job of job is computed, f coming before or after job in the step")
    lines.append("static bool neurofa_may_overlap(codeobj_func job, codeobj_func f, bool before)\n{")
    for name, job in sorted(jobs.items()):
        for before in (True, False):
            free = sorted(other for other, fp in others.items() if other not in jobs and may_overlap(job, fp, before))
            test = " || ".join(f"f == &{other}" for other in free) or "false"
            lines.append(f"    if (job == &{name} && {'before' if before else '!before'}) return {test};")
    lines.append("    return false;\n}\n")
    return "\n".join(lines) + "\n"


def network_patches(jobs: dict[str, JobFootprint], others: dict[str, Footprint]) -> tuple[tuple[str, str], ...]:
    """Replacements in Brian2's ``network.cpp`` (each ``old`` must occur once) that run the step as the module
    docstring describes: ``jobs`` are the functions that post a row job, ``others`` every other code object's
    function, each with its footprint. Objects without one (none of Brian2's, a ``NULL`` clock entry) never
    overlap a job."""
    head = '#include "network.h"\n'
    return ((head, head + _table_functions(jobs, others)),
            (_LOOP, _TABLES + _LOOP),
            (_CALL, _CALL_JOINED),
            (_TICK, "        neurofa::RowPool::get().join();  // no job outlives its step\n        neurofa_job = -1;\n"
                    "        neurofa_step++;\n" + _TICK))
