"""The quality run: `charrnn train tinyshakespeare.txt --minutes 10 --val-frac 0.1` with the defaults.

    python benchmarks/bench_quality.py                  # the full 10 minutes
    python benchmarks/bench_quality.py --minutes 2 -- --hidden 128   # extra train options after --

Reads ../shared/corpora/tinyshakespeare.txt (skips when absent), trains in a temporary
checkpoint directory with --log, and prints the validation curve (nats per character on the
last 10 % of the corpus, by minute) on stderr and one JSON object on stdout.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpora" / "tinyshakespeare.txt"
TARGET = 1.47  # nanoGPT's reported validation loss on this split


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("extra", nargs="*", help="more `charrnn train` options (after --)")
    a = ap.parse_args()
    if not CORPUS.exists():
        print(f"skipped: {CORPUS} not found", file=sys.stderr)
        return
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "log.jsonl")
        cmd = [sys.executable, "-m", "charrnn", "train", str(CORPUS), "--minutes", str(a.minutes),
               "--val-frac", "0.1", "--checkpoint-dir", tmp, "--log", log, "--quiet", *a.extra]
        env = dict(os.environ, CHARRNN_CACHE_DIR=os.path.join(tmp, "cache"))
        print("$ charrnn " + " ".join(cmd[3:]), file=sys.stderr)
        subprocess.run(cmd, check=True, env=env, cwd=ROOT)
        records = [json.loads(line) for line in open(log, encoding="utf-8")]
    steps = {r["step"]: r for r in records if r["event"] == "step"}
    evals = [(steps[r["step"]]["elapsed"] / 60, r["step"], r["val_loss"]) for r in records
             if r["event"] == "eval" and r["val_loss"] is not None and r["step"] in steps]
    print(f"{'minute':>7} {'step':>6} {'val nats/char':>14} {'bits/char':>10}", file=sys.stderr)
    for minute, step, val in evals:
        print(f"{minute:7.2f} {step:6d} {val:14.4f} {val / 0.6931471805599453:10.3f}", file=sys.stderr)
    best = min(v for _, _, v in evals)
    print(f"best validation loss {best:.4f} nats/char (target {TARGET}): "
          f"{'reached' if best <= TARGET else 'not reached'}", file=sys.stderr)
    # how the optimisation went: a spike in the training loss, and the clipping around it
    trace = sorted(steps.values(), key=lambda r: r["step"])
    worst = max(trace, key=lambda r: r["loss"] - (r["smooth_loss"] or r["loss"]))
    clipped = [r["step"] for r in trace if r["clipped"]]
    print(f"{len(trace)} steps, {len(clipped)} clipped (gradient norm above --clip); largest jump of the "
          f"loss over its running mean: {worst['loss'] - worst['smooth_loss']:+.3f} nats at step {worst['step']}, "
          f"largest gradient norm {max(r['grad_norm'] for r in trace):.3g}", file=sys.stderr)
    print(json.dumps({"bench": "quality", "minutes": a.minutes, "best_val_loss": round(best, 4),
                      "target": TARGET, "steps": len(trace), "clipped_steps": clipped[:1000],
                      "max_grad_norm": max(r["grad_norm"] for r in trace),
                      "curve": [[round(m, 2), s, round(v, 4)] for m, s, v in evals]}))


if __name__ == "__main__":
    main()
