"""The recipe's check: `charrnn train CORPUS --minutes M` with the adaptive recipe against
`--recipe fixed` (2x256 LSTM, dropout 0.1), on the same machine, in one run.

    python benchmarks/recipe_vs_fixed.py CORPUS ... --minutes 2 10             # side by side, 1 thread each
    python benchmarks/recipe_vs_fixed.py CORPUS --minutes 10 --serial --threads 2  # one after the other
    python benchmarks/recipe_vs_fixed.py CORPUS1 CORPUS2 --recipes auto            # the rule alone, two corpora at once

Side by side (the default) the two runs train at once with --threads 1 each, one core apiece:
both see the same machine, a one-core one. --serial runs them one after the other with the
threads given (the whole machine each). --recipes auto runs the rule alone (the fixed recipe's
figures do not change with the rule). Side by side, two runs train at any time, in order (a
budget's runs before the next budget's), so each corpus's run has another beside it. Every run:
--val-frac 0.1 --seed 1, validation on the last tenth; OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE
are removed from the runs' environment, so OpenBLAS picks its kernels for this CPU (the report
names them). Prints a table on stderr and appends one JSON line per run to --out.
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
from itertools import product

from charrnn import blas
from recipe_grid import HOST_ONLY, parse_with_train_options  # benchmarks/ is this script's sys.path[0]


def train(index, minutes, corpus, recipe, threads, work, extra):
    name = f"{index}-{os.path.splitext(os.path.basename(corpus))[0]}-{minutes:g}m-{recipe}"
    log = os.path.join(work, name + ".jsonl")
    cmd = [sys.executable, "-m", "charrnn", "train", corpus, "--name", name, "--checkpoint-dir", work,
           "--minutes", str(minutes), "--recipe", recipe, "--threads", str(threads), "--val-frac", "0.1",
           "--seed", "1", "--log", log, *extra]
    env = {k: v for k, v in os.environ.items() if k not in HOST_ONLY}
    env["CHARRNN_CACHE_DIR"] = os.path.join(work, "cache")
    started = time.time()
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    records = [json.loads(line) for line in open(log, encoding="utf-8")] if os.path.exists(log) else []
    elapsed = {e["step"]: e["elapsed"] for e in records if e["event"] == "step"}
    curve = [(e["step"], round(elapsed.get(e["step"], math.nan), 1), e["val_loss"]) for e in records
             if e["event"] == "eval" and e.get("val_loss") is not None]
    said = next((line[len("recipe: "):] for line in r.stderr.splitlines() if line.startswith("recipe: ")), None)
    return {"corpus": os.path.basename(corpus), "minutes": minutes, "recipe": recipe, "threads": threads,
            "choice": said, "best_val": min((v for *_, v in curve), default=math.nan), "steps": max(elapsed, default=0),
            "curve": curve, "seconds": round(time.time() - started, 1), "rc": r.returncode,
            "stderr": r.stderr[-400:] if r.returncode else ""}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("corpus", nargs="+")
    ap.add_argument("--minutes", type=float, nargs="+", default=[2.0, 10.0])
    ap.add_argument("--serial", action="store_true", help="one run after the other, --threads each")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--recipes", nargs="+", choices=("auto", "fixed"), default=["auto", "fixed"])
    ap.add_argument("--out", default=None, help="append the results here as JSON lines")
    a = parse_with_train_options(ap)
    for k in HOST_ONLY:
        os.environ.pop(k, None)
    print(f"OpenBLAS kernels: {blas.corename()}; {'one after the other' if a.serial else 'side by side'}, "
          f"--threads {a.threads}", file=sys.stderr)
    work = tempfile.mkdtemp(prefix="recipe-vs-fixed-")
    runs = list(enumerate(product(a.minutes, a.corpus, a.recipes)))  # equal budgets side by side
    if not a.serial and len(runs) % 2:
        print(f"note: {len(runs)} runs: the last trains alone for part of its time", file=sys.stderr)
    with ThreadPoolExecutor(1 if a.serial else 2) as pool:  # side by side: two runs at any time, in order
        for res in pool.map(lambda r: train(r[0], *r[1], a.threads, work, a.extra), runs):
            print(f"{res['corpus']:24} {res['minutes']:>4g} min {res['recipe']:5} best val {res['best_val']:.4f} "
                  f"({res['steps']} steps, rc {res['rc']})  {res['choice'] or ''}", file=sys.stderr, flush=True)
            if a.out:
                with open(a.out, "a", encoding="utf-8") as f:
                    f.write(json.dumps({**res, "kernels": blas.corename()}) + "\n")


if __name__ == "__main__":
    main()
