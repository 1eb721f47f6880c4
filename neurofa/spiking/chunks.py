"""Monitor data of spiking runs, and runs cut into chunks that survive being killed (numpy only).

A spiking run with ``simulation.checkpoint_interval`` > 0 runs its standalone program once per *chunk* of
:attr:`~neurofa.spiking.structure.Structure.chunk_pres` presentations (:func:`neurofa.spiking.structure
.chunk_presentations`). Every chunk starts from the state the previous one ended in: every state variable of every
group and synapse object (weights, traces, voltages, PAL's noise, accumulators, summed dendritic potentials) and
the state of the random generator, restored through ``run_args`` and a file the program reads (no recompilation).
With the generator restored, the chunked run is the same computation as the run in one piece: its monitors
sample the same states (they sample at the start of a step, and chunks start at sample times) and its spikes are
the same, and the annealing factor reads the run's time step (the chunk's step plus ``step_offset``) times dt,
which is exactly how Brian2 computes t in a run in one piece.

:class:`SeedStore` writes, for one seed, each chunk's monitor data (``seed<S>_chunk<C>``) and then the state after
it (``seed<S>_state``) into a :class:`~neurofa.checkpoint.Checkpoint`; a killed run resumes at the first chunk
whose state is missing. :func:`merge` joins the chunks' monitor data into the :class:`RunOutput` of the whole
run: times shifted by each chunk's start, the sample at the end of the last chunk taken from its final state, and
everything after the end of the run (the silent presentations that pad the last chunk) dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neurofa.checkpoint import Checkpoint
from neurofa.spiking.structure import Structure

__all__ = ["RunOutput", "ChunkState", "SeedStore", "merge"]


@dataclass
class RunOutput:
    """Monitor data of one run (times in ms, exact multiples of dt): weight snapshots ``weights[name]``
    (n_rec, n_syn), layer accumulators ``layers[(group, var)]`` (n_rec, n_cells), test samples ``test[var]``
    (n_half_windows, n_out), recorded spikes ``spikes[group]`` = (time steps, cell indices) in the order they
    occurred."""

    record_times: np.ndarray
    weights: dict[str, np.ndarray]
    layers: dict[tuple[str, str], np.ndarray]
    test_times: np.ndarray | None
    test: dict[str, np.ndarray]
    wall_s: float
    spikes: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def arrays(self) -> dict[str, np.ndarray]:
        """Flat names → arrays (for a checkpoint file); :meth:`from_arrays` inverts it."""
        out = {"record_times": self.record_times, "wall_s": np.asarray(self.wall_s)}
        out.update({f"w/{name}": v for name, v in self.weights.items()})
        out.update({f"layer/{group}/{var}": v for (group, var), v in self.layers.items()})
        if self.test_times is not None:
            out["test_times"] = self.test_times
        out.update({f"test/{var}": v for var, v in self.test.items()})
        for group, (steps, cells) in self.spikes.items():
            out[f"spikes/{group}/steps"], out[f"spikes/{group}/cells"] = steps, cells
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RunOutput:
        parts = {key: key.split("/") for key in arrays}
        spikes = {p[1]: (arrays[f"spikes/{p[1]}/steps"], arrays[f"spikes/{p[1]}/cells"])
                  for p in parts.values() if p[0] == "spikes"}
        return cls(arrays["record_times"], {p[1]: arrays[k] for k, p in parts.items() if p[0] == "w"},
                   {(p[1], p[2]): arrays[k] for k, p in parts.items() if p[0] == "layer"},
                   arrays.get("test_times"), {p[1]: arrays[k] for k, p in parts.items() if p[0] == "test"},
                   float(arrays["wall_s"]), spikes)


@dataclass
class ChunkState:
    """The state after a chunk: the index of the next chunk, every state variable (``"object.variable"`` →
    values) and the random generators' bytes."""

    next_chunk: int
    variables: dict[str, np.ndarray]
    rng: np.ndarray


class SeedStore:
    """The chunk files of one seed in a checkpoint."""

    def __init__(self, checkpoint: Checkpoint, seed: int):
        self.checkpoint = checkpoint
        self.prefix = f"seed{int(seed)}_"

    def state(self) -> ChunkState | None:
        """The state after the last finished chunk, or None before the first."""
        arrays = self.checkpoint.load(self.prefix + "state")
        if arrays is None:
            return None
        variables = {k[4:]: v for k, v in arrays.items() if k.startswith("var/")}
        return ChunkState(int(arrays["next_chunk"]), variables, arrays["rng"])

    def output(self, chunk: int) -> RunOutput:
        arrays = self.checkpoint.load(f"{self.prefix}chunk{chunk:05d}")
        if arrays is None:
            raise FileNotFoundError(f"{self.checkpoint.directory}: the data of chunk {chunk} is missing")
        return RunOutput.from_arrays(arrays)

    def save(self, chunk: int, out: RunOutput, state: ChunkState) -> None:
        """The chunk's monitor data first, then the state that says it is done."""
        self.checkpoint.save(f"{self.prefix}chunk{chunk:05d}", out.arrays())
        self.checkpoint.save(self.prefix + "state", {"next_chunk": np.asarray(state.next_chunk), "rng": state.rng,
                                                     **{f"var/{k}": v for k, v in state.variables.items()}})


def merge(s: Structure, outputs: list[RunOutput], final: dict[str, np.ndarray]) -> RunOutput:
    """The whole run's monitor data from its chunks' (see the module docstring); ``final`` is the state after the
    last chunk. Monitor sources and variables are those of the chunks' data: weights ``w`` of synapse objects,
    layer variables of groups, the test variables of the output group."""
    chunk_steps = round(s.chunk_pres * s.t_pres / s.dt)
    end = s.n_chunks * chunk_steps

    def shifted(times: np.ndarray, index: int) -> np.ndarray:
        return np.rint(np.asarray(times) / s.dt).astype(np.int64) + index * chunk_steps

    keep_until = round(s.end_time / s.dt)
    rec_steps = np.concatenate([shifted(o.record_times, c) for c, o in enumerate(outputs)] + [np.array([end])])
    # without monitors the record grid is the training time's, as in a run in one piece
    rec_keep = rec_steps <= (keep_until if outputs[0].weights or outputs[0].layers else round(s.train_time / s.dt))
    weights = {name: np.concatenate([o.weights[name] for o in outputs] + [final[f"{name}.w"][None]])[rec_keep]
               for name in outputs[0].weights}
    layers = {(g, v): np.concatenate([o.layers[(g, v)] for o in outputs] + [final[f"{g}.{v}"][None]])[rec_keep]
              for (g, v) in outputs[0].layers}
    test_times, test = None, {}
    if outputs[0].test_times is not None:
        output_group = f"P{s.n_layers}"
        t_steps = np.concatenate([shifted(o.test_times, c) for c, o in enumerate(outputs)  # type: ignore[arg-type]
                                  ] + [np.array([end])])
        t_keep = t_steps <= keep_until
        test = {v: np.concatenate([o.test[v] for o in outputs] + [final[f"{output_group}.{v}"][None]])[t_keep]
                for v in outputs[0].test}
        test_times = t_steps[t_keep] * s.dt
    spikes = {}
    for group in outputs[0].spikes:
        steps = np.concatenate([o.spikes[group][0] + c * chunk_steps for c, o in enumerate(outputs)])
        cells = np.concatenate([o.spikes[group][1] for o in outputs])
        spikes[group] = (steps, cells)
    return RunOutput(rec_steps[rec_keep] * s.dt, weights, layers, test_times, test,
                     float(sum(o.wall_s for o in outputs)), spikes)
