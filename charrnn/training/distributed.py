"""Data-parallel training on MPI: `mpirun -n K charrnn train ...` trains one model on K ranks.

Every rank holds a replica. Each takes its run of the window's shards (core/shards.py: rank
r takes the shards worker r of a single machine with K workers would), computes them, and
the ranks combine them:

    exact  every rank gathers every rank's unfinished nodes of the gradient tree and finishes
           the tree: the same float32 operations, in the same order, as a single machine
           with any number of workers, so the runs are equal bit for bit
    sum    each rank sums its own nodes, then MPI_Allreduce: equal to a single machine to
           float32 rounding

and then every rank clips and takes the same optimizer step. The gather moves (K-1) gradients
to each rank where a ring allreduce moves under two, so exact is the default up to
EXACT_RANKS ranks only (at most twice the traffic) and while the K gathered gradients fit in
EXACT_BYTES; CHARRNN_MPI_REDUCE=exact or sum chooses (exact still within EXACT_BYTES). The
losses are gathered either way and summed in shard order. The dropout masks of the whole
window come from the run's one Generator on every rank, so each rank's slice of them is the
single machine's. Only rank 0 reads the corpus (it is broadcast), owns the run directory,
validates, checkpoints, logs and draws the progress; rank 0 also broadcasts the starting
state (a fresh model's or a resumed checkpoint's), so every replica starts from the same
bytes. After each step the ranks agree on the decisions the clock or a signal makes (stop,
save), so they stop and save at the same step.

mpi4py is imported only when the launcher's environment says K > 1 (``world_size``); no
pickle crosses the wire: arrays go as buffers, everything else as JSON.

Faults. A rank that fails prints one line prefixed with its rank and host and leaves with
os._exit, which makes mpirun end the others at once (a Python exit would wait in MPI_Finalize
while the others wait in a collective: a hang). A rank killed outright is mpirun's to clean
up: it SIGKILLs the others within milliseconds and prints its own report. A machine that
drops leaves the others blocked in a collective that never returns: a watchdog thread ends
a rank whose steps stop for ``timeout`` seconds (CHARRNN_MPI_TIMEOUT, else 60 s plus ten
times the longest step or save seen) with one line, and nudges its mpirun to end as well.
"""
import json
import os
import socket
import sys
import threading
import time

import numpy as np

from charrnn.core import shards
from charrnn.errors import CharrnnError, UsageError

EXACT_BYTES = 256 << 20  # gather-and-sum in rank order only while K gradients take at most this
SAY_FIRST = 5.0  # seconds another rank leaves rank 0 to say an error they all met
EXACT_RANKS = 4  # and by default only up to this many ranks (benchmarks/bench_mpi.py: the cost)
LAUNCHERS = ("mpiexec", "mpiexec.hydra", "mpirun")


def env_rank():
    """This process's rank as the launcher's environment gives it (0 outside mpirun)."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMI_ID", "PMIX_RANK"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return 0


def report(message, code, usage=False, prefix="charrnn: error: "):
    """How a command under mpirun with two ranks or more leaves on an error: rank 0 says it in
    one line. Once MPI runs, another rank first waits SAY_FIRST seconds, since most errors are
    met by every replica alike (a diverged loss) and are rank 0's to say: mpirun ends this rank
    as soon as rank 0 leaves. An error of its own (rank 0 is still waiting for it) it then says
    prefixed with its rank and host; a usage error it never says (each rank got the same
    command line). Then os._exit once MPI runs (a Python exit would wait in MPI_Finalize);
    before that, mpirun waits for every rank, so a plain exit, with no wait."""
    rank = env_rank()
    running = "mpi4py.MPI" in sys.modules
    if rank != 0 and running:
        time.sleep(SAY_FIRST)
    if rank == 0 or not usage:
        _say(message, "" if rank == 0 else f"rank {rank} ({socket.gethostname()}): ", prefix)
    if running:
        os._exit(code)
    sys.exit(code)


def _say(message, lead="", prefix="charrnn: error: "):
    """One line on stderr, flushed with stdout (the process may leave by os._exit next)."""
    sys.stdout.flush()
    sys.stderr.write(f"{prefix}{lead}{' '.join(str(message).split())}\n")
    sys.stderr.flush()


def world_size():
    """The number of ranks the MPI launcher started, from its environment alone (MPICH's hydra
    and Intel MPI set PMI_SIZE, Open MPI OMPI_COMM_WORLD_SIZE); None where a launcher ran this
    without saying how many (PMI_PORT), 1 outside mpirun."""
    e = os.environ
    for var in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE"):
        if var in e:
            try:
                return int(e[var])
            except ValueError:
                return None
    if "PMI_PORT" in e or "PMIX_RANK" in e:
        return None
    return 1


class World:
    """The K ranks of this job: collectives on numpy buffers and JSON, and what they agree on."""

    def __init__(self, comm):
        from mpi4py import MPI
        self.MPI, self.comm = MPI, comm
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.host = socket.gethostname()
        self.watchdog = None

    @classmethod
    def join(cls):
        """The World this process is a rank of, or None outside a launch of two ranks or more."""
        size = world_size()
        if size == 1:
            return None
        choice = os.environ.get("CHARRNN_MPI_REDUCE", "auto")
        if choice not in ("auto", "exact", "sum"):  # before MPI starts: every rank says it, rank 0 alone
            raise UsageError(f"CHARRNN_MPI_REDUCE={choice}: say auto, exact or sum")
        try:
            from mpi4py import MPI
        except ImportError:
            raise CharrnnError(f"started by mpirun with {size or 'several'} ranks, but mpi4py is not installed here: "
                               f"pip install mpi4py mpich (charrnn's mpi extra) on every machine") from None
        world = cls(MPI.COMM_WORLD)
        return world if world.size > 1 else None

    @property
    def primary(self):
        return self.rank == 0

    def where(self):
        return f"rank {self.rank} ({self.host})"

    def shards(self, B, rank=None):
        """This rank's (or ``rank``'s) run of shards [first, last) of a batch of B (as worker r
        of K on one machine: core/shards.split)."""
        return shards.split(0, len(shards.bounds(B)), self.size)[self.rank if rank is None else rank]

    def streams(self, B, rank=None):
        """This rank's (or ``rank``'s) streams [lo, hi) of a batch of B."""
        return shards.streams(B, *self.shards(B, rank))

    # ------------------------------------------------------------------ collectives
    def bcast_json(self, obj=None):
        """Rank 0's JSON-able ``obj`` on every rank."""
        data = json.dumps(obj, allow_nan=False).encode() if self.primary else b""
        n = np.array([len(data)], dtype=np.int64)
        self.comm.Bcast(n, root=0)
        buf = np.frombuffer(data, dtype=np.uint8).copy() if self.primary else np.empty(int(n[0]), dtype=np.uint8)
        self.comm.Bcast(buf, root=0)
        return json.loads(buf.tobytes().decode())

    def bcast_arrays(self, arrays=None):
        """Rank 0's dict of numpy arrays on every rank (their names, dtypes and shapes as JSON)."""
        spec = self.bcast_json({k: [v.dtype.str, list(v.shape)] for k, v in arrays.items()} if self.primary else None)
        out = {}
        for name, (dtype, shape) in spec.items():
            buf = np.ascontiguousarray(arrays[name]) if self.primary else np.empty(shape, dtype=np.dtype(dtype))
            if buf.size:
                self.comm.Bcast(buf.reshape(-1).view(np.uint8), root=0)
            out[name] = buf
        return out

    def allgather_json(self, obj):
        """Every rank's JSON-able ``obj``, in rank order."""
        data = np.frombuffer(json.dumps(obj, allow_nan=False).encode(), dtype=np.uint8)
        sizes = np.empty(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([data.size], dtype=np.int64), sizes)
        out = np.empty(int(sizes.sum()), dtype=np.uint8)
        self.comm.Allgatherv(data, [out, sizes.tolist()])
        ends = np.cumsum(sizes)
        return [json.loads(out[e - s:e].tobytes().decode()) for s, e in zip(sizes, ends)]

    def agree(self, flags):
        """The largest of every rank's int flags: what the ranks do together."""
        out = np.empty(len(flags), dtype=np.int64)
        self.comm.Allreduce(np.asarray(flags, dtype=np.int64), out, op=self.MPI.MAX)
        return out

    def reduction(self, nbytes):
        """How a gradient of ``nbytes`` is summed: "exact" (gathered, in rank order) or "sum"."""
        choice = os.environ.get("CHARRNN_MPI_REDUCE", "auto")
        if self.size * nbytes > EXACT_BYTES or choice == "sum":
            return "sum"
        return "exact" if choice == "exact" or self.size <= EXACT_RANKS else "sum"

    def combine(self, part, T, B):
        """Every rank's Part of the window (core/shards.py) as the whole window's (loss, grads,
        state): the gradient tree finished from every rank's nodes (exact) or each rank's sum
        added by MPI_Allreduce (sum), the losses summed in shard order, the states joined."""
        n = len(shards.bounds(B))
        keys = sorted(part.nodes[0][2])
        shapes = [part.nodes[0][2][k].shape for k in keys]
        flat = [np.concatenate([g[k].reshape(-1) for k in keys]) for _, _, g in part.nodes]  # (P,) a node
        P = flat[0].size
        if self.reduction(P * flat[0].itemsize) == "exact":
            ids = self.allgather_json([[lv, ix] for lv, ix, _ in part.nodes])
            counts = [len(r) * P for r in ids]
            every = np.empty(sum(counts), dtype=flat[0].dtype)  # (ΣP,) every rank's nodes, in rank order
            self.comm.Allgatherv(np.concatenate(flat), [every, counts])
            at, parts = 0, []
            for r in ids:
                parts.append([(lv, ix, every[at + i * P:at + (i + 1) * P]) for i, (lv, ix) in enumerate(r)])
                at += len(r) * P
            total = shards.total(parts, n, _add)
        else:
            mine = flat[0]
            for f in flat[1:]:
                mine += f
            total = np.empty_like(mine)
            self.comm.Allreduce(mine, total, op=self.MPI.SUM)
        nll = self.allgather_floats(part.nll)
        out, at = {}, 0
        for k, shape in zip(keys, shapes):
            size = int(np.prod(shape))
            out[k] = total[at:at + size].reshape(shape)
            at += size
        return sum(nll) * shards.window_scale(T, B), out, self.join_state(shards.join_states(part.states), B)

    def allgather_floats(self, values):
        """Every rank's list of floats, joined in rank order (as float64 buffers: exact)."""
        mine = np.asarray(values, dtype=np.float64)
        counts = np.empty(self.size, dtype=np.int64)
        self.comm.Allgather(np.array([mine.size], dtype=np.int64), counts)
        every = np.empty(int(counts.sum()), dtype=np.float64)
        self.comm.Allgatherv(mine, [every, counts.tolist()])
        return every.tolist()

    def join_state(self, state, B):
        """Every rank's streams of the carried state (per layer, per tensor, its (b_r, H) rows)
        joined in rank order, in one collective: each rank's rows follow from B."""
        mine = np.concatenate([a.reshape(-1) for layer in state for a in layer])  # (b_r·ΣH,)
        width = sum(a.shape[1] for layer in state for a in layer)  # ΣH
        rows = [hi - lo for lo, hi in (self.streams(B, r) for r in range(self.size))]
        every = np.empty(B * width, dtype=mine.dtype)  # (B·ΣH,)
        self.comm.Allgatherv(mine, [every, [n * width for n in rows]])
        blocks, at = [], 0
        for n in rows:  # rank r's block: its tensors one after another, each (n, H)
            blocks.append(every[at:at + n * width])
            at += n * width
        joined, off = [], 0
        for layer in state:
            parts = []
            for a in layer:
                w = a.shape[1]
                parts.append(np.concatenate([blk[off * n:(off + w) * n].reshape(n, w) for blk, n in zip(blocks, rows)]))
                off += w
            joined.append(tuple(parts))
        return joined

    def saved(self, seconds=0.0):
        """Rank 0 has saved (in ``seconds``); the others wait here meanwhile, their watchdogs
        allowing a save ten times the longest seen, at least ``first``."""
        dog = self.watchdog
        if dog is not None:
            dog.saving = True
        took = float(self.agree([round(seconds * 1e6)])[0]) / 1e6
        if dog is not None:
            dog.saves, dog.saving = max(dog.saves, took), False
            dog.kick()

    # ------------------------------------------------------------------ faults
    def fail(self, message, code):
        """One line on stderr, then leave at once: mpirun ends the other ranks (a Python exit
        would wait in MPI_Finalize for ranks that wait in a collective)."""
        try:
            _say(message, "" if self.primary else f"{self.where()}: ")
        finally:
            os._exit(code)

    def start_watchdog(self, first=300.0):
        self.watchdog = Watchdog(self, first).start()
        return self.watchdog


class Watchdog:
    """Ends this rank when its steps stop (a machine or the network was lost and a collective
    will never return; a Python signal handler cannot run while the main thread waits in MPI).
    ``kick(seconds)`` after every step and save tells it how long one took; the limit is
    CHARRNN_MPI_TIMEOUT, else 60 s plus ten times the longest, ``first`` before any; while
    another rank's save is awaited (``saving``), also at least ``first`` and ten times the
    longest save."""

    def __init__(self, world, first):
        self.world, self.longest, self.first = world, 0.0, first
        self.saves, self.saving = 0.0, False
        fixed = os.environ.get("CHARRNN_MPI_TIMEOUT")
        self.fixed = float(fixed) if fixed else None
        self.last, self.done = time.monotonic(), threading.Event()
        self.thread = threading.Thread(target=self._watch, name="charrnn-watchdog", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def limit(self):
        if self.fixed is not None:
            return self.fixed
        step = self.first if self.longest == 0 else 60.0 + 10 * self.longest
        return max(step, self.first, 60.0 + 10 * self.saves) if self.saving else step

    def kick(self, seconds=0.0):
        self.longest = max(self.longest, seconds)
        self.last = time.monotonic()

    def stop(self):
        self.done.set()

    def _watch(self):
        while not self.done.wait(min(1.0, self.limit() / 4)):
            idle = time.monotonic() - self.last
            if idle > self.limit():
                _nudge_launcher()
                self.world.fail(f"no training step finished on {self.world.where()} for {idle:.0f} s: another rank "
                                f"stopped answering (a machine or the network was lost); the run's last checkpoint "
                                f"is kept, resume it with --resume", 75)


def _add(a, b):
    a += b
    return a


def _nudge_launcher():
    """mpirun waits for a lost machine's proxy even after every local rank left; SIGINT, SIGINT
    (its force abort) and SIGTERM, a second apart, end it. Only on the launch host."""
    pid = os.getppid()
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            return
        if stat[stat.index("(") + 1:stat.rindex(")")] in LAUNCHERS:
            import subprocess
            script = f"for s in INT INT TERM; do sleep 1; kill -0 {pid} 2>/dev/null || exit 0; kill -$s {pid}; done"
            subprocess.Popen(["/bin/sh", "-c", script], start_new_session=True, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            return
        pid = int(stat[stat.rindex(")") + 2:].split()[1])
