"""The experiments behind charrnn's recipe (docs/recipe.md): train a grid of networks on one
corpus, each for the steps a time budget buys it on a reference machine, and report each one's
best validation loss.

    python benchmarks/recipe_grid.py CORPUS --grid 'LxH:dropout:lr:steps[:seq_len[:cell]]' ...
        [--jobs 2] [--evals 10] [--out results.jsonl] [-- TRAIN_OPTION ...]

A budget is given in steps so that runs side by side (one thread each, --jobs of them) learn
exactly what one run of that many steps learns at any speed (charrnn's sums do not depend on
the number of workers: core/shards.py); the steps come from the measured step time of each
network on the reference machine (benchmarks/recipe_speed.py). A budget written as minutes
("2m") is a real-time one instead (--minutes: each setting gets what those minutes buy it on
this machine, side by side with the other jobs, validation as the loop spaces it). Every run: --val-frac 0.1,
--seed 1, cosine schedule, validation --evals times a run (ten; fewer on a corpus whose
validation is dear), `--recipe fixed` (the grid
sets every option the recipe would). Results are appended as JSON lines.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HOST_ONLY = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # a host's settings, removed from every measured run


def run_one(corpus, spec, work, extra, evals=10):
    shape, dropout, lr, steps, *rest = spec.split(":")
    window, cell = (rest + [None, None])[:2]
    layers, hidden = shape.split("x")
    name = f"{shape}-d{dropout}-lr{lr}-s{steps}" + "".join(f"-{t}" for t in rest)
    log = os.path.join(work, name + ".jsonl")
    budget = ["--minutes", steps[:-1]] if steps.endswith("m") else ["--steps", steps, "--eval-every",
                                                                   str(math.ceil(int(steps) / evals))]
    cmd = [sys.executable, "-m", "charrnn", "train", corpus, "--name", name, "--checkpoint-dir", work,
           "--layers", layers, "--hidden", hidden, "--dropout", dropout, "--lr", lr, *budget,
           "--threads", "1", "--val-frac", "0.1", "--seed", "1",
           "--log", log, "--quiet", "--seq-len", window or "100", "--recipe", "fixed",
           *(["--cell", cell] if cell else []), *extra]
    env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY}
    t = time.time()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    records = [json.loads(line) for line in open(log) if '"event": "eval"' in line] if os.path.exists(log) else []
    vals = [(e["step"], e["val_loss"]) for e in records if e.get("val_loss") is not None]
    best = min((v for _, v in vals), default=math.nan)
    return {"corpus": os.path.basename(corpus), "spec": spec, "extra": extra, "layers": int(layers), "hidden": int(hidden),
            "dropout": float(dropout), "lr": float(lr), "steps": vals[-1][0] if vals else 0, "budget": steps,
            "seq_len": int(window or 100), "cell": cell,
            "best_val": best, "curve": vals,
            "seconds": round(time.time() - t, 1), "rc": r.returncode, "stderr": r.stderr[-500:]}


def parse_with_train_options(ap, argv=None):
    """``ap``'s arguments, and as ``.extra`` what follows ``--``: options for `charrnn train` as they are."""
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    a = ap.parse_args(argv[:cut])
    a.extra = argv[cut + 1:]
    return a


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus")
    ap.add_argument("--grid", nargs="+", required=True, help="LxH:dropout:lr:steps[:seq_len[:cell]] per run")
    ap.add_argument("--evals", type=int, default=10, choices=range(1, 1001), metavar="N",
                    help="validations a run (a budget in steps), 1 to 1000")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=None, help="append the results here as JSON lines")
    a = parse_with_train_options(ap)
    work = tempfile.mkdtemp(prefix="recipe-grid-")
    with ThreadPoolExecutor(a.jobs) as pool:
        for res in pool.map(lambda s: run_one(a.corpus, s, work, a.extra, a.evals), a.grid):
            print(f"{res['corpus']:24} {res['spec']:28} best val {res['best_val']:.4f}  ({res['seconds']:.0f} s, "
                  f"rc {res['rc']})", flush=True)
            if a.out:
                with open(a.out, "a") as f:
                    f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
