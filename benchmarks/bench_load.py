"""Corpus loading and training at scale: a 200 MB corpus against a 2 MB one.

    python benchmarks/bench_load.py                    # 200 MB corpus, 60 training steps
    python benchmarks/bench_load.py --mb 50 --steps 20 --keep /tmp/bench

1. Generates a seeded corpus of --mb MB (random words over a 26-letter alphabet with a Zipf-like
   frequency, lines of 4-15 words) in a temporary directory, and a 2 MB corpus from its first
   lines. Nothing is committed or downloaded.
2. Encoding: `charrnn.text.corpus.load_corpus(Sources([path]))` (the files streamed in chunks, never
   held whole) in a fresh subprocess with an empty CHARRNN_CACHE_DIR (cold: sha256 pass,
   vocabulary pass, encoding pass into the token cache), then once more (cached: the sha256 pass,
   check the cache, map it). MB/s is of corpus bytes. The OS page cache is warm in both runs
   (the file was just written), so "cold" means charrnn's cache only.
3. Training: `python -m charrnn train` (lstm 1x128, one-hot input, batch 32, seq-len 100,
   --threads 1, --steps N, dropout 0, one evaluation at the end) on both corpora, first with an
   empty token cache (the run encodes the corpus: the first training on it), then with it warm. Time per step from the --log step events (start-up, encoding and the final evaluation
   excluded); ru_maxrss of the training subprocess (os.wait4) against the analytic sum of what
   it must hold: the token pages it touches (train windows + validation reads, 4 bytes a token;
   the rest of the memmap stays on disk), parameters, gradients, Adam's two moments, and
   activations (4 bytes x T*B x (3G + 6H + 3V), G = 4H: the forward cache of the input
   projection and gates, c, tanh c, h, the dropout output; the backward's gate and state
   gradients; logits, probabilities and their gradient), plus the validation rows (int64).
   The baseline is measured, not guessed: the ru_maxrss of a child that merely runs
   `python -c "import charrnn.cli, numpy"`. The ratio that decides the target is
   (training ru_maxrss - baseline) / analytic sum: the interpreter's ~40 MB would otherwise
   dominate a small model. (A fuller baseline, the modules training imports, is shown too.)
   "other s" is the training run's wall time outside its steps: start-up (reading the corpus,
   its sha256, the cache check), the final evaluation and the checkpoint save.

Prints a table on stderr and one JSON object per measurement on stdout.
"""
import argparse
import json
import math
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# No numpy in this process: Linux carries a parent's peak RSS at fork into the child's
# ru_maxrss, so the parent stays small (the corpus is generated in a child too).
ROOT = Path(__file__).resolve().parents[1]
MB = 1_000_000
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
MAX_VAL_TOKENS = 1 << 20  # charrnn.training.lm: validation reads at most this many tokens


# --------------------------------------------------------------------------- corpus

def generate(path, n_bytes, seed=0):
    """Random words from a small alphabet, in lines, written piece by piece (bounded memory)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    lengths = rng.integers(1, 10, 4000)
    words = np.array(["".join(rng.choice(letters, n)) for n in lengths])
    p = 1.0 / np.arange(1, len(words) + 1)  # Zipf-like: a few words are common
    p /= p.sum()
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < n_bytes:
            ids = rng.choice(len(words), 1_000_000, p=p)
            per_line = rng.integers(4, 16, 200_000)
            cuts = np.cumsum(per_line)
            cuts = cuts[cuts < len(ids)]
            lines = [" ".join(chunk) for chunk in np.split(words[ids], cuts)]
            piece = "\n".join(lines) + "\n"
            f.write(piece)
            written += len(piece)  # ASCII: characters = bytes
    return written


def head(src, dst, n_bytes):
    with open(src, "rb") as f:
        data = f.read(n_bytes)
    data = data[: data.rfind(b"\n") + 1]
    Path(dst).write_bytes(data)
    return len(data)


# --------------------------------------------------------------------------- subprocesses

def run(cmd, env, cwd):
    """(returncode, stdout, stderr, wall seconds, peak RSS bytes) of one child, its own rusage."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return p.returncode, out.read(), err.read(), wall, usage.ru_maxrss * 1024  # Linux: KiB


ENCODE = """
import json, sys, time
from charrnn.text.corpus import load_corpus
from charrnn.text.sources import Sources, default_cache_dir
t = time.perf_counter()
with Sources([sys.argv[1]]) as src:
    c = load_corpus(src, cache_dir=default_cache_dir())
t_load = time.perf_counter() - t
print(json.dumps({"load_s": t_load, "tokens": int(len(c.tokens)), "vocab": len(c.vocab),
                  "memmap": type(c.tokens).__name__ == "memmap"}))
"""

BASELINE = "import charrnn.cli, numpy"  # what is subtracted
BASELINE_FULL = "import numpy, charrnn.cli, charrnn.training.lm, charrnn.ui.progress, charrnn.text.corpus"  # shown


def encode(corpus, env, cwd):
    code, out, err, wall, rss = run([sys.executable, "-c", ENCODE, str(corpus)], env, cwd)
    if code:
        sys.exit(f"encoding failed: {err.decode()}")
    return dict(json.loads(out), wall_s=wall, maxrss=rss)


def train(corpus, name, steps, env, cwd, hidden, batch, seq_len):
    log = Path(cwd) / f"{name}.jsonl"
    log.unlink(missing_ok=True)  # --log appends
    cmd = [sys.executable, "-m", "charrnn", "train", str(corpus), "--name", name, "--cell", "lstm",
           "--layers", "1", "--hidden", str(hidden), "--batch", str(batch), "--seq-len", str(seq_len),
           "--threads", "1", "--dropout", "0", "--steps", str(steps), "--eval-every", str(steps),
           "--warmup", "0", "--quiet", "--force", "--log", str(log)]
    code, out, err, wall, rss = run(cmd, env, cwd)
    if code:
        sys.exit(f"training failed: {err.decode()}")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    elapsed = [e["elapsed"] for e in events if e["event"] == "step"]
    diffs = [b - a for a, b in zip(elapsed, elapsed[1:])]  # step k: end of step k-1 to end of step k
    return {"steps": len(elapsed), "step_ms_mean": 1e3 * statistics.fmean(diffs[1:]),
            "step_ms_median": 1e3 * statistics.median(diffs), "first_step_ms": 1e3 * elapsed[0],
            "wall_s": wall, "maxrss": rss, "outside_steps_s": wall - elapsed[-1]}  # start-up, final evaluation, save


def analytic(n_tokens, vocab, steps, hidden, batch, seq_len, val_frac=0.05):
    """Bytes the training process must hold for its data and model, by component."""
    V, H, B, T = vocab, hidden, batch, seq_len
    G = 4 * H
    n_params = V * G + H * G + G + H * V + V  # one-hot input: Wx rows are the embedding
    n_val = int(n_tokens * val_frac)
    train_len = n_tokens - n_val
    stream_len = (train_len - 1) // B
    per_stream = min(stream_len, steps * T + 1)  # each stream reads a contiguous run
    touched_train = B * (math.ceil(per_stream * 4 / PAGE) + 1) * PAGE
    val_read = min(n_val, MAX_VAL_TOKENS)
    touched_val = (math.ceil(val_read * 4 / PAGE) + 1) * PAGE
    return {
        "tokens_touched": touched_train + touched_val,
        "params": 4 * n_params,
        "grads": 4 * n_params,
        "adam_moments": 8 * n_params,
        "activations": 4 * T * B * (3 * G + 6 * H + 3 * V),
        "val_rows_int64": 8 * val_read + 4 * val_read,  # np.stack of the streams, then astype(int64)
    }


# --------------------------------------------------------------------------- main

def fmt_mb(n):
    return f"{n / MB:,.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200, help="size of the large corpus in MB [200]")
    ap.add_argument("--small-mb", type=float, default=2, help="size of the small corpus in MB [2]")
    ap.add_argument("--steps", type=int, default=60, help="training steps per corpus [60]")
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seq-len", type=int, default=100)
    ap.add_argument("--keep", default=None, help="work in this directory and keep it (default: a temp dir)")
    ap.add_argument("--generate", nargs=2, metavar=("PATH", "BYTES"), help=argparse.SUPPRESS)  # the child
    a = ap.parse_args()
    if a.generate:
        print(generate(a.generate[0], int(a.generate[1])))
        return

    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="charrnn-bench-load-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CHARRNN_CACHE_DIR=str(work / "cache"), OPENBLAS_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CHARRNN_CHECKPOINT_DIR", None)
    rows = []

    def emit(d):
        rows.append(d)
        print(json.dumps(d), flush=True)

    try:
        big, small = work / "big.txt", work / "small.txt"
        t = time.perf_counter()
        code, out, err, _, _ = run([sys.executable, __file__, "--generate", str(big), str(int(a.mb * MB))], env, work)
        if code:
            sys.exit(f"generating the corpus failed: {err.decode()}")
        n_big = int(out)
        gen_s = time.perf_counter() - t
        n_small = head(big, small, int(a.small_mb * MB))
        print(f"corpora: {fmt_mb(n_big)} MB generated in {gen_s:.1f} s, {fmt_mb(n_small)} MB head; "
              f"work dir {work}", file=sys.stderr)

        _, _, _, _, base_rss = run([sys.executable, "-c", BASELINE], env, work)
        _, _, _, _, full_rss = run([sys.executable, "-c", BASELINE_FULL], env, work)
        emit({"bench": "baseline", "code": BASELINE, "maxrss_mb": base_rss / MB,
              "full_code": BASELINE_FULL, "full_maxrss_mb": full_rss / MB})

        enc = {}
        for label, corpus, n in (("big", big, n_big), ("small", small, n_small)):
            shutil.rmtree(work / "cache", ignore_errors=True)  # cold: charrnn's cache is empty
            cold = encode(corpus, env, work)
            warm = encode(corpus, env, work)
            assert warm["tokens"] == cold["tokens"] == n and warm["memmap"]
            enc[label] = (cold, warm)
            emit({"bench": "encode", "corpus": label, "mb": n / MB, "tokens": cold["tokens"],
                  "vocab": cold["vocab"], "cold_load_s": cold["load_s"], "cold_mb_per_s": n / MB / cold["load_s"],
                  "cold_maxrss_mb": cold["maxrss"] / MB, "cached_load_s": warm["load_s"],
                  "cached_mb_per_s": n / MB / warm["load_s"], "cached_maxrss_mb": warm["maxrss"] / MB})

        tr = {}
        for label, corpus, n in (("big", big, n_big), ("small", small, n_small)):
            parts = analytic(n, enc[label][0]["vocab"], a.steps, a.hidden, a.batch, a.seq_len)
            total = sum(parts.values())
            for cache in ("cold", "warm"):  # cold: this training run encodes the corpus itself
                if cache == "cold":
                    shutil.rmtree(work / "cache", ignore_errors=True)
                r = train(corpus, f"bench-{label}", a.steps, env, work, a.hidden, a.batch, a.seq_len)
                ratio = (r["maxrss"] - base_rss) / total
                tr[label, cache] = (r, parts, total, ratio)
                emit({"bench": "train", "corpus": label, "token_cache": cache, "mb": n / MB, **r,
                      "maxrss_mb": r["maxrss"] / MB, "baseline_mb": base_rss / MB, "analytic_mb": total / MB,
                      **{f"analytic_{k}_mb": v / MB for k, v in parts.items()},
                      "ratio_maxrss_minus_baseline_to_analytic": ratio,
                      "ratio_maxrss_to_analytic": r["maxrss"] / total, "corpus_bytes_mb": n / MB})

        # ------------------------------------------------------------------ table
        p = lambda *s: print(*s, file=sys.stderr)  # noqa: E731
        p("")
        p(f"{'encoding':<10} {'MB':>8} {'tokens':>12} {'cold s':>8} {'cold MB/s':>10} {'cold RSS MB':>12} "
          f"{'cached s':>9} {'cached RSS MB':>14}")
        for label, n in (("big", n_big), ("small", n_small)):
            cold, warm = enc[label]
            p(f"{label:<10} {fmt_mb(n):>8} {cold['tokens']:>12,} {cold['load_s']:>8.2f} "
              f"{n / MB / cold['load_s']:>10.1f} {fmt_mb(cold['maxrss']):>12} {warm['load_s']:>9.3f} "
              f"{fmt_mb(warm['maxrss']):>14}")
        p("")
        p(f"{'training':<10} {'MB':>8} {'cache':>6} {'ms/step':>8} {'median':>8} {'other s':>8} {'RSS MB':>8} "
          f"{'RSS-base':>9} {'analytic MB':>12} {'(RSS-base)/analytic':>20}")
        for label, n in (("big", n_big), ("small", n_small)):
            for cache in ("cold", "warm"):
                r, parts, total, ratio = tr[label, cache]
                p(f"{label:<10} {fmt_mb(n):>8} {cache:>6} {r['step_ms_mean']:>8.1f} {r['step_ms_median']:>8.1f} "
                  f"{r['outside_steps_s']:>8.2f} {fmt_mb(r['maxrss']):>8} {fmt_mb(r['maxrss'] - base_rss):>9} "
                  f"{fmt_mb(total):>12} {ratio:>20.2f}")
        p("")
        p(f"baseline subtracted: ru_maxrss of `python -c \"{BASELINE}\"` = {fmt_mb(base_rss)} MB "
          f"(with train, display and data imported too: {fmt_mb(full_rss)} MB); this parent's peak RSS "
          f"(a floor on every child's ru_maxrss): {fmt_mb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)} MB")
        _, parts, _, _ = tr["big", "warm"]
        p("analytic parts (big): " + ", ".join(f"{k} {fmt_mb(v)} MB" for k, v in parts.items()))
        worst = max(tr["big", c][3] for c in ("cold", "warm"))
        p(f"target (RSS - baseline) <= 1.5 x analytic on the {fmt_mb(n_big)} MB corpus: "
          f"{'met' if worst <= 1.5 else 'NOT met'} (worst ratio {worst:.2f})")
        extra = tr["big", "warm"][0]["maxrss"] - tr["small", "warm"][0]["maxrss"]
        p(f"RSS big - small (warm): {fmt_mb(extra)} MB for a corpus {fmt_mb(n_big - n_small)} MB larger "
          f"(token array if all resident: {fmt_mb(4 * (n_big - n_small))} MB)")
        ratio = tr["big", "warm"][0]["step_ms_mean"] / tr["small", "warm"][0]["step_ms_mean"]
        p(f"time per step, big / small: {ratio:.2f}")
        emit({"bench": "summary", "step_time_ratio_big_to_small": ratio, "rss_big_minus_small_mb": extra / MB,
              "worst_ratio_big": worst, "target_met": worst <= 1.5})
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
