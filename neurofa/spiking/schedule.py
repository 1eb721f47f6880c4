r"""The time step of a threaded program: the rows of the wide projections on a pool of threads, overlapped with the
rest of the step (pure text, no Brian2).

A standalone program runs its code objects one after another in every time step, in Brian2's order. With
``spiking.threads`` = N > 1, the dense loops of every projection of at least
:data:`~neurofa.spiking.kernels.PARALLEL_MIN_SYNAPSES` synapses (:mod:`neurofa.spiking.kernels`) become *row
jobs*: the code object computes what its loop needs (the scalar code, the zeroed target of a summed variable),
hands the loop over postsynaptic rows to a pool of N − 1 worker threads (:data:`ROW_POOL_H`) and returns at once.
The main thread goes on with the following code objects of the step, the neuron groups, the Poisson input and the
random numbers among them, as long as they do not touch what the job touches, and joins the job (computes its own
share of the rows and waits for the workers) before the first object that does, before the next job (unless that
job may queue behind it, below) and at the end of the step.

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
more of the step then runs beside it. Only what commutes is reordered. And a job may queue behind the jobs still
pending (:func:`may_chain`; up to four at a time): it then takes their split of the rows, and each thread computes
its rows of the jobs in the order posted, so that row i of the second job follows row i of the first on one
thread. This needs the same rows (:data:`LAYOUT`) and that what one job writes and the other uses is used by both
only at the row's own synapses. The jobs of one dense projection chain: the sum of W₁ x starts at the beginning of
the step, the update of W₁ queues behind it at its own turn and W₁'s spike-triggered update
(:func:`neurofa.spiking.kernels.spike_triggered`) behind that; the worker goes from one to the next, and the main
thread computes its rows of all three when P₀'s reset (x jumps) needs them joined.

The main thread computes the first m rows of a job, the workers share the rest equally. m is kept per job (per
chain) from one step to the next and moves by one row towards balance after the last pending job is joined (one
more if the main thread had to wait at any of the joins, one fewer if not), so each row stays with one thread, and
in its cache. (Letting idle
threads take rows from each other balanced better but moved rows between cores, and the loops themselves became
slower than the waiting it saved: ``docs/science.md`` §3.8.) Each row is computed by the same code whichever thread
takes it, so a run gives the same result, bitwise, at every thread count, and the random numbers stay on the main
thread in Brian2's order (``tests/test_kernels.py``, ``tests/test_schedule.py``).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass

__all__ = ["ROW_POOL_H", "HEADER", "POST", "ROWS", "COMMIT", "END", "LAYOUT", "row_pool_header", "Footprint",
           "footprint", "JobFootprint", "job_footprint", "may_overlap", "may_chain", "functions", "row_job",
           "network_patches"]

#: the file name of the pool in the build directory
HEADER = "neurofa_rows.h"
#: the call that posts a row job (a code object whose source contains it is a job)
POST = "neurofa::RowPool::get().post("

#: the pool of worker threads (C++11, header-only; ``NEUROFA_THREADS`` is the thread count, the main thread's
#: included). Up to four jobs are pending at a time, each in a slot; the workers compute them in the order posted.
#: Synchronisation: the main thread writes a job's slot (and everything the job reads) and then increments
#: ``posted_`` (release); a worker that sees the new count (acquire) computes its range of the job's rows and then
#: decrements the slot's ``active`` (release); :func:`join_oldest` returns once ``active`` is 0 (acquire), so the
#: main thread sees every row the workers wrote, and only then may the slot take a new job. A worker waits for the
#: next job spinning, then yielding, then sleeping.
ROW_POOL_H = r"""// neurofa: rows of the wide projections on a pool of threads (neurofa/spiking/schedule.py)
#ifndef NEUROFA_ROWS_H
#define NEUROFA_ROWS_H
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
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
#define NEUROFA_SLOTS 4  // the most jobs pending at a time

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
    // copies what the rows wrote to a private buffer into the arrays the rest of the program reads. Pending jobs
    // are joined first, unless chain() was called and the newest pending job has n rows: the new job then queues
    // behind it with the same split, so each thread computes its rows of the new job after its rows of that
    // one, and row i of both jobs is computed by one thread, in order
    void post(const std::function<void(int, int)>* rows, int n, Partition* partition,
              const std::function<void()>* commit = nullptr)
    {
        const unsigned long posted = posted_.load(std::memory_order_relaxed);
        const bool chained = chain_ && pending_ > 0 && pending_ < SLOTS && slots_[(posted - 1) % SLOTS].n == n;
        chain_ = false;
        if (!chained)
        {
            join();
            if (partition->main_rows < 0 || partition->main_rows > n)
                partition->main_rows = n / NEUROFA_THREADS;
        }
        Slot& slot = slots_[posted % SLOTS];
        slot.rows = rows;
        slot.commit = commit;
        slot.n = n;
        if (chained)
        {
            const Slot& first = slots_[(posted - 1) % SLOTS];
            slot.partition = first.partition;
            for (int t = 0; t <= NEUROFA_THREADS; t++)
                slot.bounds[t] = first.bounds[t];
        }
        else
        {
            slot.partition = partition;
            const long main_rows = partition->main_rows, rest = n - main_rows, workers = NEUROFA_THREADS - 1;
            for (int t = 0; t <= NEUROFA_THREADS; t++)
                slot.bounds[t] = t == 0 ? 0 : (int)(main_rows + rest * (t - 1) / workers);
        }
        slot.active.store(NEUROFA_THREADS - 1, std::memory_order_relaxed);
        pending_++;
        posted_.store(posted + 1, std::memory_order_release);
    }

    // let the next post queue behind the newest pending job (the network decides which jobs may chain)
    void chain()
    {
        chain_ = true;
    }

    // the number of jobs posted and not yet joined (at most SLOTS)
    int pending() const
    {
        return pending_;
    }

    // join the oldest pending job: compute the main thread's rows, wait for the workers and commit. At the last
    // pending job, move its partition by one row towards balance: the main thread takes one row more if it had to
    // wait at any join since the last balance (a chain is balanced as a whole), one row less if not
    void join_oldest()
    {
        if (pending_ == 0)
            return;
        Slot& slot = slots_[(posted_.load(std::memory_order_relaxed) - pending_) % SLOTS];
        if (slot.bounds[1] > slot.bounds[0])
            (*slot.rows)(slot.bounds[0], slot.bounds[1]);
        if (slot.active.load(std::memory_order_acquire) != 0)
        {
            waited_ = true;
            for (long spins = 0; slot.active.load(std::memory_order_acquire) != 0; spins++)
                pause(spins);
        }
        if (--pending_ == 0)
        {
            int& main_rows = slot.partition->main_rows;
            if (waited_ && main_rows < slot.bounds[NEUROFA_THREADS])
                main_rows++;
            else if (!waited_ && main_rows > 0)
                main_rows--;
            waited_ = false;
        }
        if (slot.commit)
            (*slot.commit)();
    }

    // join every pending job, oldest first
    void join()
    {
        while (pending_ > 0)
            join_oldest();
    }

private:
    static const int SLOTS = NEUROFA_SLOTS;

    struct Slot
    {
        alignas(64) std::atomic<int> active{0};
        alignas(64) const std::function<void(int, int)>* rows = nullptr;
        const std::function<void()>* commit = nullptr;
        Partition* partition = nullptr;
        int n = 0;
        int bounds[NEUROFA_THREADS + 1];
    };

    alignas(64) std::atomic<unsigned long> posted_;
    Slot slots_[SLOTS];
    int pending_ = 0;
    bool chain_ = false;
    bool waited_ = false;

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

    RowPool() : posted_(0)
    {
        for (int t = 1; t < NEUROFA_THREADS; t++)
            std::thread(&RowPool::worker, this, t).detach();
    }

    // compute this worker's rows of every job, in the order posted
    void worker(int t)
    {
        for (unsigned long done = 0;; done++)
        {
            for (long spins = 0; posted_.load(std::memory_order_acquire) == done; spins++)
                pause(spins < 1000000 ? spins : -1);
            Slot& slot = slots_[done % SLOTS];
            if (slot.bounds[t + 1] > slot.bounds[t])
                (*slot.rows)(slot.bounds[t], slot.bounds[t + 1]);
            slot.active.fetch_sub(1, std::memory_order_release);
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
#: the comment that gives a job's rows as ``<rows> x <width>``: row i uses, at ``_idx``, only the synapses i·width to
#: (i + 1)·width − 1 (:func:`job_footprint`, ``row_local``)
LAYOUT = "// neurofa: layout"
_LAYOUT = re.compile(re.escape(LAYOUT) + r" (\d+ x \d+)$", re.M)


def row_job(loop: str, n_rows: int, indent: str = "    ", commit: str = "", width: int = 0) -> str:
    """A C++ block that posts ``loop`` (a loop over ``_i`` from ``_row_begin`` to ``_row_end``, which captures the
    code object's local variables by value) as a row job over ``n_rows`` rows, with its own partition; ``commit``
    (statements) runs on the main thread at the job's join, after every row. ``width`` > 0 declares that the loop,
    for row i, uses ``_idx`` only for the synapses i·width + j, 0 ≤ j < width (:data:`LAYOUT`)."""
    layout = f"{indent}{LAYOUT} {n_rows} x {width}\n" if width > 0 else ""
    block = (f"{indent}static std::function<void(int, int)> _neurofa_rows;\n"
             f"{indent}static neurofa::Partition _neurofa_partition;\n"
             f"{layout}{indent}{ROWS}\n"
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
    #: the arrays used only through their length (``X.size()``, ``X.empty()``)
    sized: frozenset[str] = frozenset()


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
    sized: set[str] = set()
    unsized: set[str] = set()
    for match in _ARRAY.finditer(code):
        name, following = match[2], _NON_SPACE.search(code, match.end())
        next_char = following.start() if following else len(code)
        uses.add(name)
        (sized if _SIZE.match(code, next_char) and not match[1] else unsized).add(name)
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
    return Footprint(frozenset(uses), frozenset(writes), sized=frozenset(sized - unsized))


@dataclass(frozen=True)
class JobFootprint:
    """What a row job touches: ``post``, the code that runs in the object's turn on the main thread (its scalar
    code); ``rows``, the code computed beside the rest of the step; and ``commit``, the copies made at the join
    into the arrays the rest of the program reads (a summed variable's target, :mod:`neurofa.spiking.kernels`),
    which therefore keep their old values until the join. ``layout`` is the job's rows as ``"<rows> x <width>"``
    (:data:`LAYOUT`; empty if not declared) and ``row_local`` the arrays the rows use only at ``[_idx]``, their own
    synapses."""

    post: Footprint
    rows: Footprint
    commit: Footprint
    layout: str = ""
    row_local: frozenset[str] = frozenset()

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


def _row_local(rows: str) -> frozenset[str]:
    """The arrays that ``rows`` uses only in the form ``X[_idx]``."""
    forms: dict[str, set[bool]] = {}
    for match in _ARRAY.finditer(rows):
        forms.setdefault(match[2], set()).add(not match[1] and rows.startswith("[_idx]", match.end()))
    return frozenset(name for name, local in forms.items() if local == {True})


def job_footprint(source: str) -> JobFootprint:
    """The :class:`JobFootprint` of a row job's source (:func:`row_job`)."""
    rest, regions = _regions(source)
    layout = _LAYOUT.search(source)
    return JobFootprint(footprint(rest), footprint(regions[ROWS]), footprint(regions[COMMIT]),
                        layout[1] if layout else "", _row_local(regions[ROWS]))


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


def may_chain(first: JobFootprint, second: JobFootprint) -> bool:
    """Whether the job ``second`` may be posted while ``first``, which comes before it in the step, is still
    computed: queued behind it with the same rows per thread (:data:`ROW_POOL_H`), so that each thread computes
    row i of ``second`` after row i of ``first``, and rows of ``first`` computed by one thread run beside rows of
    ``second`` computed by another.

    That needs the same layout of rows (:data:`LAYOUT`); an array one job writes and the other uses must be used by
    both only at the row's own synapses (``row_local``); ``second``'s post, on the main thread, must be allowed
    beside ``first`` as any object after it (:func:`may_overlap`); and ``first``'s commit, made at its join while
    ``second``'s rows may run, must not touch what those rows write nor write what they read. ``second``'s post may
    read the length of an array that ``first``'s rows use only at their own synapses, which cannot change it. (The
    jobs of one dense projection chain: its summed variable, its weight update and its spike-triggered update, so
    that row i sums W_i· before it updates W_i·.)
    """
    post = second.post
    post = dataclasses.replace(post, uses=post.uses - (post.sized & first.row_local))
    if not first.layout or first.layout != second.layout or not may_overlap(first, post, before=False):
        return False
    shared = (first.rows.writes & second.rows.uses) | (second.rows.writes & first.rows.uses)
    if not shared <= first.row_local & second.row_local:
        return False
    return not (first.commit.writes & second.rows.uses or first.commit.uses & second.rows.writes)


def functions(source: str) -> list[str]:
    """The ``_run_...`` functions a generated code object file defines (the network calls them)."""
    return _FUNCTION.findall(source)


# ------------------------------------------------------------------------------------------------------------
# the network's step

_CALL = ("                if (func)  // code objects can be NULL in cases where we store just the clock\n"
         "                    func();\n")
_CALL_JOINED = """                if (func && neurofa_ran[i] != neurofa_step)  // (NULL: a clock without code)
                {
                    // a job that may queue behind every pending job does so; otherwise join, oldest first, the
                    // pending jobs up to the newest one object i may not run beside
                    bool chains = neurofa_posts[i] && neurofa_pending > 0;
                    for (int k = 0; chains && k < neurofa_pending; k++)
                        chains = neurofa_chain[neurofa_jobs[k] * neurofa_n + i];
                    int joined = 0;
                    for (int k = 0; !chains && k < neurofa_pending; k++)
                        if (!neurofa_overlap[neurofa_jobs[k] * neurofa_n + i])
                            joined = k + 1;
                    for (int k = 0; k < joined; k++)
                        neurofa::RowPool::get().join_oldest();
                    for (int k = joined; k < neurofa_pending; k++)
                        neurofa_jobs[k - joined] = neurofa_jobs[k];
                    neurofa_pending -= joined;
                    const int early = neurofa_hoist[i];
                    if (neurofa_pending == 0 && early >= 0 && curclocks.find(objects[early].first) != curclocks.end())
                    {
                        objects[early].second();  // posts its job now: it commutes with objects i to early - 1
                        neurofa_ran[early] = neurofa_step;
                        neurofa_jobs[neurofa_pending++] = early;
                    }
                    if (chains)
                        neurofa::RowPool::get().chain();
                    func();
                    if (neurofa_posts[i])
                    {
                        neurofa_pending = neurofa::RowPool::get().pending();
                        neurofa_jobs[neurofa_pending - 1] = (int)i;
                    }
                }
"""
_TICK = ("        for(std::set<Clock*>::iterator i=curclocks.begin(); i!=curclocks.end(); i++)\n"
         "            (*i)->tick();\n")
_LOOP = "    while(clock && clock->running() && !Network::_globally_stopped)\n"
_TABLES = """    // neurofa: which objects post a row job; which may run while the job of object j is computed (coming
    // before or after j in the step); which jobs may queue behind the job of object j; and which job may be
    // posted before object i, ahead of its turn (the next job, if it commutes with the objects between)
    const size_t neurofa_n = objects.size();
    std::vector<char> neurofa_posts(neurofa_n), neurofa_overlap(neurofa_n * neurofa_n);
    std::vector<char> neurofa_chain(neurofa_n * neurofa_n);
    for (size_t j = 0; j < neurofa_n; j++)
    {
        neurofa_posts[j] = neurofa_is_job(objects[j].second);
        for (size_t i = 0; i < neurofa_n; i++)
        {
            neurofa_overlap[j * neurofa_n + i] = neurofa_may_overlap(objects[j].second, objects[i].second, i < j);
            neurofa_chain[j * neurofa_n + i] = i > j && neurofa_may_chain(objects[j].second, objects[i].second);
        }
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
    int neurofa_jobs[NEUROFA_SLOTS], neurofa_pending = 0;  // the objects whose jobs are pending, oldest first
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
    lines.append("    return false;\n}")
    lines.append("// whether the job of second may queue behind the pending job of first")
    lines.append("static bool neurofa_may_chain(codeobj_func first, codeobj_func second)\n{")
    for first, second in itertools.permutations(sorted(jobs), 2):
        if may_chain(jobs[first], jobs[second]):
            lines.append(f"    if (first == &{first} && second == &{second}) return true;")
    lines.append("    return false;\n}\n")
    return "\n".join(lines) + "\n"


_LOOP_END = "    Network::_globally_running = false;\n"


def network_patches(jobs: dict[str, JobFootprint], others: dict[str, Footprint], prefetches: tuple[str, ...] = (),
                    restores: tuple[str, ...] = ()) -> tuple[tuple[str, str], ...]:
    """Replacements in Brian2's ``network.cpp`` (each ``old`` must occur once) that run the step as the module
    docstring describes: ``jobs`` are the functions that post a row job, ``others`` every other code object's
    function, each with its footprint. Objects without one (none of Brian2's, a ``NULL`` clock entry) never
    overlap a job. ``prefetches`` are functions called at the end of every step, once every job is joined, and
    ``restores`` functions called when the loop ends: those of the double-buffered state updates
    (:func:`neurofa.spiking.kernels.double_buffered`)."""
    head = '#include "network.h"\n'
    declared = "".join(f"void {name}();\n" for name in prefetches + restores)
    called = "".join(f"        {name}();\n" for name in prefetches)
    restored = "".join(f"    {name}();\n" for name in restores)
    return ((head, head + _table_functions(jobs, others) + declared),
            (_LOOP, _TABLES + _LOOP),
            (_CALL, _CALL_JOINED),
            (_TICK, "        neurofa::RowPool::get().join();  // no job outlives its step\n"
                    "        neurofa_pending = 0;\n        neurofa_step++;\n" + called + _TICK),
            (_LOOP_END, _LOOP_END + restored))
