"""Data parallelism on MPI: measured parts, and the scaling they project.

    python benchmarks/bench_mpi.py                 # all three parts, about three minutes
    python benchmarks/bench_mpi.py --steps 40 --rounds 1

1. Throughput: `charrnn train` on ../shared/corpora/tinyshakespeare.txt (LSTM 2x256, --batch
   32, --seq-len 100, no validation during the timed steps) as one rank with one thread, as
   `mpirun -n 2 ... --threads 1`, and as one machine with `--threads 2` (two worker
   processes), in alternating rounds; chars/s is the median over the steps after the first 20
   of each run's own training-time speed (its --log).
2. One gradient reduction (training/distributed.World.combine) for LSTM 2x256 and 2x512,
   2 ranks on this machine, in both modes: exact (Allgather, summed in rank order) and sum
   (MPI_Allreduce); median of 20 after 3 warm-ups, the slower rank's time.
3. The projection, weak scaling (each machine keeps 32 streams of 100, so --batch is 32·K):
   one step costs the measured compute time of 32 streams on one core plus the reduction,
   modelled for a ring allreduce as 2·(K-1)/K · bytes / bandwidth (latency and any overlap
   of communication with computation ignored); efficiency = compute / (compute + reduce).
   The exact mode's allgather moves (K-1) · bytes to each rank instead: it is shown too.
   This is a projection from measured parts, not a measurement on K machines.

Reads the corpus from ../shared (skips when absent). Prints tables on stderr, one JSON object
per measurement on stdout.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
CHARRNN = [sys.executable, "-m", "charrnn"]
MPIRUN = shutil.which("mpirun", path=str(Path(sys.executable).parent)) or shutil.which("mpirun")
SIZES = {"lstm-2x256": 256, "lstm-2x512": 512}
MACHINES = (2, 4, 8, 16, 32, 64)
LINKS = {"10 Gbit/s": 10e9 / 8, "100 Gbit/s": 100e9 / 8}  # bytes per second


def clean_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "OMPI_", "HYDI_", "MPI_"))}


def emit(record):
    print(json.dumps(record), flush=True)


# --------------------------------------------------------------------------- 1. throughput

def train_speed(how, steps, work):
    name = f"{how}-{time.monotonic_ns()}"
    log = Path(work) / f"{name}.jsonl"
    args = ["train", str(CORPUS), "--steps", str(steps), "--eval-every", str(10 * steps), "--val-frac", "0.01",
            "--hidden", "256", "--layers", "2", "--batch", "32", "--seq-len", "100", "--name", name,
            "--log", str(log), "--quiet", "--checkpoint-dir", str(Path(work) / "ck")]
    cmd = {"1 rank, 1 thread": [*CHARRNN, *args, "--threads", "1"],
           "2 MPI ranks, 1 thread each": [MPIRUN, "-n", "2", *CHARRNN, *args, "--threads", "1"],
           "1 machine, --threads 2": [*CHARRNN, *args, "--threads", "2"]}[how]
    subprocess.run(cmd, check=True, env=clean_env(), cwd=work, stdout=subprocess.DEVNULL)
    speeds = [r["chars_per_s"] for r in map(json.loads, log.read_text().splitlines())
              if r.get("event") == "step" and r["step"] > 20]
    return statistics.median(speeds)


def throughput(steps, rounds):
    hows = ["1 rank, 1 thread", "2 MPI ranks, 1 thread each", "1 machine, --threads 2"]
    got = {h: [] for h in hows}
    with tempfile.TemporaryDirectory() as work:
        for r in range(rounds):
            for how in (hows if r % 2 == 0 else hows[::-1]):  # alternate so drift hits all alike
                got[how].append(train_speed(how, steps, work))
    base = statistics.median(got[hows[0]])
    print("\nthroughput, LSTM 2x256, batch 32 x 100 (median chars/s of the training steps)", file=sys.stderr)
    for how in hows:
        v = statistics.median(got[how])
        print(f"  {how:30s} {v:10,.0f} chars/s   x{v / base:.2f}", file=sys.stderr)
        emit({"part": "throughput", "how": how, "chars_per_s": v, "ratio_to_one_rank": v / base, "runs": got[how]})
    return got


# --------------------------------------------------------------------------- 2. one reduction

def reduce_ranks(reps=20, warm=3):
    """Run under mpirun -n 2: time World.combine per size and mode; rank 0 prints JSON."""
    import numpy as np
    from charrnn.core import model, shards
    from charrnn.core.model import ModelConfig
    from charrnn.training import distributed
    world = distributed.World.join()
    out = {}
    for name, H in SIZES.items():
        cfg = ModelConfig(vocab_size=65, cell="lstm", layers=2, hidden=H, embed=0)
        grads = {k: v.astype(np.float32) for k, v in model.init_params(cfg, np.random.default_rng(0)).items()}
        state = [tuple(np.zeros((16, H), np.float32) for _ in range(2)) for _ in range(2)]
        B = 16 * world.size  # one shard a rank: one node of the gradient tree each
        part = shards.Part([1.0], [(0, world.rank, grads)], [state])
        for mode in ("exact", "sum"):
            os.environ["CHARRNN_MPI_REDUCE"] = mode
            times = []
            for i in range(warm + reps):
                world.comm.Barrier()
                t = time.perf_counter()
                world.combine(part, 100, B)
                dt = np.array([time.perf_counter() - t])
                slowest = np.empty(1)
                world.comm.Allreduce(dt, slowest, op=world.MPI.MAX)
                if i >= warm:
                    times.append(float(slowest[0]))
            out[f"{name}/{mode}"] = {"seconds": statistics.median(times), "floats": model.count_params(cfg),
                                     "bytes": 4 * model.count_params(cfg)}
    if world.primary:
        print(json.dumps(out))


def reductions():
    r = subprocess.run([MPIRUN, "-n", "2", sys.executable, __file__, "--reduce"], env=clean_env(), check=True,
                       capture_output=True, text=True)
    got = json.loads(r.stdout.strip().splitlines()[-1])
    print("\none gradient reduction, 2 ranks on this machine (median of 20, the slower rank)", file=sys.stderr)
    for key, v in got.items():
        print(f"  {key:20s} {v['floats']:>10,} floats ({v['bytes'] / 2**20:5.1f} MiB) {v['seconds'] * 1e3:7.2f} ms",
              file=sys.stderr)
        emit({"part": "reduction", "what": key, **v})
    return got


# --------------------------------------------------------------------------- 3. the projection

def step_compute(H, reps=5):
    """Seconds of one training step (forward, backward, Adam) of 32 x 100 on one thread."""
    import numpy as np
    from charrnn import blas
    from charrnn.core import model, optim, shards
    from charrnn.core.model import ModelConfig
    cfg = ModelConfig(vocab_size=65, cell="lstm", layers=2, hidden=H, embed=0, dropout=0.1)
    rng = np.random.default_rng(0)
    params = model.init_params(cfg, rng)
    opt = optim.make_optimizer("adam")
    st = opt.init_state(params)
    x = rng.integers(0, 65, (100, 32))
    y = rng.integers(0, 65, (100, 32))
    times = []
    for i in range(reps + 1):
        t = time.perf_counter()
        _, grads, _ = shards.loss_and_grads(params, cfg, x, y, model.zero_state(cfg, 32), rng,
                                           block_limit=blas.product_limit())
        opt.step(params, grads, st, 1e-3)
        if i:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def projection(reduced):
    print("\nprojected efficiency, weak scaling (32 streams per machine), ring allreduce 2(K-1)/K·bytes/bw;"
          " exact mode: allgather (K-1)·bytes/bw", file=sys.stderr)
    for name, H in SIZES.items():
        compute = step_compute(H)
        nbytes = reduced[f"{name}/sum"]["bytes"]
        print(f"  {name}: one step {compute * 1e3:.0f} ms compute, {nbytes / 2**20:.1f} MiB of gradient",
              file=sys.stderr)
        head = "".join(f"{link + ' ' + mode:>22s}" for link in LINKS for mode in ("sum", "exact"))
        print(f"    {'K':>4s}{head}", file=sys.stderr)
        for K in MACHINES:
            row = []
            for link, bw in LINKS.items():
                ring = 2 * (K - 1) / K * nbytes / bw
                gather = (K - 1) * nbytes / bw
                for mode, comm in (("sum", ring), ("exact", gather)):
                    eff = compute / (compute + comm)
                    row.append(f"{eff:21.1%} ")
                    emit({"part": "projection", "model": name, "machines": K, "link": link, "mode": mode,
                          "compute_s": compute, "reduce_s": comm, "efficiency": eff})
            print(f"    {K:4d}" + "".join(row), file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=60, help="steps per throughput run")
    ap.add_argument("--rounds", type=int, default=2, help="alternating rounds of the throughput runs")
    ap.add_argument("--reduce", action="store_true", help=argparse.SUPPRESS)  # the ranks of part 2
    ap.add_argument("--skip-throughput", action="store_true")
    a = ap.parse_args()
    if a.reduce:
        return reduce_ranks()
    if MPIRUN is None:
        sys.exit("bench_mpi: no mpirun here: pip install 'charrnn[mpi]'")
    if not CORPUS.exists() and not a.skip_throughput:
        print(f"bench_mpi: {CORPUS} is absent: skipping the throughput part", file=sys.stderr)
        a.skip_throughput = True
    if not a.skip_throughput:
        throughput(a.steps, a.rounds)
    projection(reductions())


if __name__ == "__main__":
    main()
