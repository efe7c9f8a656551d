"""What this machine offers a run: its cores (and so the default --threads), its free memory,
and whether a model fits in it before anything is allocated."""
import os

from charrnn.config.fields import OptionError
from charrnn.core import model, optim, shards

ANNOUNCE_PARAMS = 10_000_000  # a model this large takes seconds to build: say so first


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_threads(batch):
    """One worker per available core, at most 4 and at most one per shard of the batch's
    streams (core/shards.py)."""
    return max(1, min(4, cores(), len(shards.bounds(batch))))


def capped_threads(threads, batch, notify):
    """--threads at most one worker per core (32 workers on 2 cores ran 5x slower) and one per
    shard of the batch (a worker takes whole shards)."""
    n, k = cores(), len(shards.bounds(batch))
    if threads > n:
        notify(f"warning: --threads {threads} is more than the {n} cores here; using {n}")
        threads = n
    if threads > k:
        notify(f"warning: --threads {threads}: --batch {batch} makes {k} shard(s) of {shards.size(batch)} streams, "
               f"one for each worker at most; using {k} (--batch {shards.MAX_STREAMS * threads} keeps {threads} busy)")
        threads = k
    return threads


def check_memory(mcfg, batch, seq_len, optimizer, workers, notify, fresh=True, available=None):
    """Refuse a run that cannot fit in the memory this machine has free (one line, before
    anything is allocated: a 2x100000 LSTM was a 54-line MemoryError), and say what a large
    model costs before it is built (a 2x4096 one took 85 s in silence)."""
    need = model.training_bytes(mcfg, batch, seq_len, len(optim.make_optimizer(optimizer).slots), workers)
    total = need["weights"] + need["activations"]
    available = available_memory() if available is None else available
    shape = f"a {mcfg.layers}x{mcfg.hidden} {mcfg.cell}"
    if available is not None and total > available:
        raise OptionError(None, lambda n: (
            f"{shape} needs about {size(total)} to train at {n('batch')} {batch} x {n('seq_len')} {seq_len} (weights, "
            f"gradients and optimizer state {size(need['weights'])}, activations {size(need['activations'])}); "
            f"this machine has {size(available)} free: use a smaller {n('hidden')}, {n('layers')}, {n('batch')} or "
            f"{n('seq_len')}"), exit_code=1)
    n = model.count_params(mcfg)
    if fresh and n >= ANNOUNCE_PARAMS:
        notify(f"building {shape} of {n:,} parameters (about {size(total)} to train)")


def available_memory():
    """Bytes of memory free for a new process (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def size(n):
    """1.2 GiB, 340 MiB, 3.5 TiB."""
    for unit, div in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return f"{n / 1024:.0f} KiB"
