"""Where a training step's time and memory go, and how close it runs to the machine's matmul peak.

    python benchmarks/bench_profile.py                       # all configurations
    python benchmarks/bench_profile.py --only lstm-2x256 --no-memory

1. The machine: float32 matrix-product throughput measured here, 1024×1024×1024 products,
   one thread and two threads each running its own product (charrnn's threading model).
2. Per configuration: matrix-product FLOPs per trained character (analytic: forward,
   input and recurrent gradients, weight gradients; element-wise work is not counted),
   charrnn's measured chars/s with 2 worker threads, the GFLOP/s that makes and its
   fraction of the two-thread peak; PyTorch's beside it when installed.
3. A profile of one step of one worker (half the batch, one thread), by phase: recurrent
   products (h·Wh and its backward inside the time loop), element-wise gate math, input
   projections and weight gradients (one product over all T·B rows each), the output layer
   (projection, softmax, loss and their backward), the optimizer (clip and Adam), and the rest.
   Each phase is timed alone, so shares are of the phases' sum, which is printed beside the
   whole step's time (cold caches make the parts add up to a little more than the whole).
4. Peak memory of training lstm 2x512, batch 64, window 100 (a child process): the rise of peak
   RSS over the loaded interpreter, against the analytic sum of parameters, gradients, Adam's
   two moments and the activations the forward pass stores.

Prints tables on stderr and one JSON object per measurement on stdout.
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
import charrnn  # noqa: E402
charrnn._one_blas_thread()  # before numpy loads: one BLAS thread per worker, as `charrnn train` runs
import numpy as np  # noqa: E402
from charrnn import blas  # noqa: E402
from charrnn.core import cells, layers, model, optim, products, shards  # noqa: E402
from charrnn.config.model import ModelConfig  # noqa: E402

import bench_speed  # noqa: E402

V = 65  # tinyshakespeare's symbols
LIMIT = blas.product_limit()  # the recurrent product's column blocks, as the charrnn command takes them


def gemm_peak(threads, n=1024, seconds=2.0):
    """GFLOP/s of float32 n×n×n products, `threads` Python threads each running its own."""
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    done = [0] * threads

    def work(k):
        b, out = a.copy(), np.empty_like(a)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            np.matmul(a, b, out=out)
            done[k] += 1

    np.matmul(a, a)  # warm up
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return 2 * n ** 3 * sum(done) / (time.perf_counter() - t0) / 1e9


def flops_per_char(cell, layers_, H, V_=V):
    """Matrix-product FLOPs per trained character: each product x·W costs 2·rows·in·out forward
    and twice that backward (dx and dW); a one-hot first layer's input product is a row gather."""
    G = cells.get(cell).gates * H
    total = 0
    for l in range(layers_):
        D = 0 if l == 0 else H  # one-hot input: no product
        total += 3 * 2 * (D * G + H * G)
    return total + 3 * 2 * H * V_


def timeit(f, reps, fresh=None):
    """Seconds per call of f(); with fresh, f(fresh()) with a new argument each call, untimed
    (a backward consumes its cache)."""
    if fresh is None:
        f()
        t0 = time.perf_counter()
        for _ in range(reps):
            f()
        return (time.perf_counter() - t0) / reps
    spent = 0.0
    for _ in range(reps + 1):
        arg = fresh()
        t0 = time.perf_counter()
        f(arg)
        spent += (time.perf_counter() - t0) if _ else 0.0
    return spent / reps


def profile_step(cell, L, H, B, T, reps=5):
    """Seconds per phase of one training step (one thread, B rows)."""
    rng = np.random.default_rng(0)
    cfg = ModelConfig(vocab_size=V, cell=cell, layers=L, hidden=H)
    params = model.init_params(cfg, rng)
    opt = optim.make_optimizer("adam")
    ost = opt.init_state(params)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = model.zero_state(cfg, B)

    def whole():
        _, g, _ = shards.loss_and_grads(params, cfg, x, y, state, limit=LIMIT)
        optim.clip_global_norm(g, 5.0)
        opt.step(params, g, ost, 1e-9)

    total = timeit(whole, reps)
    ph = dict.fromkeys(["recurrent products", "element-wise gates", "input projections, weight grads",
                        "output layer", "optimizer"], 0.0)
    inp = x
    f32 = np.float32
    for l in range(L):
        p = model.layer_params(params, l, False)
        st = state[l]
        hs, _, _ = layers.recurrent_forward(p, inp, st, cell, limit=LIMIT)
        W, b = layers.folded_input(p, cell, one_hot=l == 0)
        xp = W[inp] if l == 0 else (inp.reshape(T * B, -1) @ W + b).reshape(T, B, -1)
        G = xp.shape[-1]
        Whs = p["Wh"] * (cells.input_scale(cell, H, f32) if cell == "lstm" else 1)
        h, a, dh = np.zeros((B, H), f32), np.empty((B, G), f32), np.empty((B, H), f32)
        dxp, WhT = rng.standard_normal((T, B, G)).astype(f32), np.ascontiguousarray(p["Wh"].T)
        dhs = rng.standard_normal((T, B, H)).astype(f32)
        blocks_f, blocks_b = products.plan(Whs, B, LIMIT), products.plan(WhT, B, LIMIT)  # as the cells cut them

        def rec_fwd():
            for t in range(T):
                products.matmul(h, Whs, blocks_f, a)

        def rec_bwd():
            for t in range(T):
                products.matmul(dxp[t], WhT, blocks_b, dh)

        t_layer_f = timeit(lambda: layers.recurrent_forward(p, inp, st, cell, limit=LIMIT), reps)
        t_cell_f = timeit(lambda: cells.cell_forward(cell, xp, st, p, limit=LIMIT), reps)
        t_layer_b = timeit(lambda c: layers.recurrent_backward(dhs, None, c), reps,
                           fresh=lambda: layers.recurrent_forward(p, inp, st, cell, limit=LIMIT)[2])
        t_cell_b = timeit(lambda c: cells.cell_backward(dhs, None, c), reps,
                          fresh=lambda: cells.cell_forward(cell, xp, st, p, limit=LIMIT)[2])
        t_rec = timeit(rec_fwd, reps) + timeit(rec_bwd, reps)
        t_dWh = timeit(lambda: cells._dWh(hs, st[0], dxp), reps)
        ph["recurrent products"] += t_rec
        ph["element-wise gates"] += t_cell_f + t_cell_b - t_rec - t_dWh
        ph["input projections, weight grads"] += (t_layer_f - t_cell_f) + (t_layer_b - t_cell_b) + t_dWh
        inp = hs
    out = {"V": params["out.V"], "c": params["out.c"]}

    def output():
        logits, oc = layers.output_forward(out, inp)
        _, d = layers.softmax_cross_entropy(logits, y)
        layers.output_backward(d, oc, out)

    ph["output layer"] = timeit(output, reps)
    grads = {k: np.full_like(v, 1e-3) for k, v in params.items()}

    def optimizer():
        optim.clip_global_norm(grads, 5.0)
        opt.step(params, grads, ost, 1e-9)

    ph["optimizer"] = timeit(optimizer, reps)
    ph["other (dispatch, loss, copies)"] = max(0.0, total - sum(ph.values()))
    return total, ph


def profile_sampling(chars=2000, threads=2):
    """Microseconds per character at batch 1 (lstm 2x256): the whole Sampler step, the Stepper's
    network step, and its weight products alone (h·Wh of the one-hot first layer, [x,h]·[Wx;Wh]
    of the second, h·V): the memory-bound floor. With 1 BLAS thread and with ``threads``, as
    `charrnn sample --threads` runs it."""
    from charrnn.core.sampling import Sampler
    cfg = ModelConfig(vocab_size=V, cell="lstm", layers=2, hidden=256)
    params = model.init_params(cfg, np.random.default_rng(0))
    stepper = model.Stepper(params, cfg)
    s = Sampler(model.Stepper(params, cfg), np.random.default_rng(0), temp=0.8)
    s.feed(0)
    ids = np.zeros(1, dtype=np.int64)
    mats = [stepper.layers[0]["Wh"], stepper.layers[1]["W"], params["out.V"]]
    ins = [np.zeros((1, m.shape[0]), np.float32) for m in mats]
    outs = [np.empty((1, m.shape[1]), np.float32) for m in mats]

    def products():
        for x, m, o in zip(ins, mats, outs):
            np.matmul(x, m, out=o)

    per = {"weight bytes": sum(m.nbytes for m in mats)}
    for n in (1, threads):
        with blas.threads(n):
            per[n] = {"sampler": timeit(s.draw, chars) * 1e6,
                      "network step": timeit(lambda: stepper.step(ids), chars) * 1e6,
                      "weight products": timeit(products, chars) * 1e6}
    return per


MEMORY_CHILD = r"""
import sys, json, resource
sys.path.insert(0, sys.argv[1])
import charrnn
charrnn._one_blas_thread()
import numpy as np
from charrnn.core import model, optim, shards
from charrnn.config.model import ModelConfig
def rss(pid='self'):  # current resident set, bytes
    with open(f'/proc/{pid}/statm') as f:
        return int(f.read().split()[1]) * resource.getpagesize()
def hwm(pid='self'):
    with open(f'/proc/{pid}/status') as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith('VmHWM'))
V, B, T, H = 65, 64, 100, 512
rng = np.random.default_rng(0)
x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
base = rss()
cfg = ModelConfig(vocab_size=V, cell='lstm', layers=2, hidden=H)
params = model.init_params(cfg, rng)
pool, kids = None, {}
if sys.argv[2] == 'processes':  # forced: train picks threads here (workers.worth_it)
    from charrnn.training import workers
    pool = workers.Workers(params, cfg, 2, B)  # 2x512 at 16-stream shards: no blocks either way
    params = pool.params
    kids = {p.pid: rss(p.pid) for p in pool._procs}  # a fresh fork maps the trainer's pages
opt = optim.make_optimizer('adam'); ost = opt.init_state(params)
state = model.zero_state(cfg, B)
for _ in range(3):
    if pool is None:
        _, g, state = shards.loss_and_grads(params, cfg, x, y, state, workers=2)
    else:
        _, g, state = pool.loss_and_grads(x, y, state)
    optim.clip_global_norm(g, 5.0); opt.step(params, g, ost, 2e-3, workers=2)
peak = hwm() + sum(hwm(pid) - r0 for pid, r0 in kids.items())  # each worker's own rise added
if pool is not None:
    pool.close()
_, _, cache = model.forward(params, cfg, x, state)
seen, act = set(), 0
def walk(o):
    global act
    if isinstance(o, np.ndarray):
        base_ = o if o.base is None else o.base
        if isinstance(base_, np.ndarray) and id(base_) not in seen and base_.size > 1000:
            seen.add(id(base_)); act += base_.nbytes
    elif isinstance(o, (list, tuple)):
        for i in o: walk(i)
    elif isinstance(o, dict):
        for i in o.values(): walk(i)
walk(cache)
pbytes = sum(v.nbytes for v in params.values())
act += T * B * V * 4  # the softmax the loss turns into dlogits
analytic = pbytes * 4 + act  # params, grads, Adam m and v, activations
print(json.dumps({"peak_rise": peak - base, "params": pbytes, "grads": pbytes, "adam": 2 * pbytes,
                  "activations": act, "analytic": analytic, "ratio": (peak - base) / analytic}))
"""


def memory(kind):
    out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(ROOT), kind], capture_output=True, text=True,
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1"), check=True)
    return json.loads(out.stdout)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=list(bench_speed.CONFIGS), default=list(bench_speed.CONFIGS))
    ap.add_argument("--window-sec", type=float, default=4.0)
    ap.add_argument("--no-memory", action="store_true")
    a = ap.parse_args()
    err = sys.stderr
    limit = LIMIT
    print(f"OpenBLAS kernels {blas.corename()}, recurrent product blocks {'on' if limit else 'off'}", file=err)
    peak1, peak2 = gemm_peak(1), gemm_peak(2)
    print(f"float32 matmul peak (1024^3): {peak1:.1f} GFLOP/s one thread, {peak2:.1f} two threads", file=err)
    print(json.dumps({"bench": "gemm_peak", "one_thread": round(peak1, 1), "two_threads": round(peak2, 1)}))
    ref = bench_speed.torch_reference() if bench_speed.CORPUS.exists() else None
    if ref is not None:
        import torch
        torch.set_num_threads(2)
    data = bench_speed.load_corpus()[0] if bench_speed.CORPUS.exists() else \
        np.random.default_rng(0).integers(0, V, 200_000).astype(np.int32)
    ns = argparse.Namespace(threads=2, rounds=1, window_sec=a.window_sec)
    print(f"\n{'config':<11} {'MFLOP/char':>10} {'chars/s':>8} {'GFLOP/s':>8} {'of peak':>8}"
          f"{'   torch chars/s, GFLOP/s, of peak' if ref else ''}", file=err)
    for name in a.only:
        cell, L, H, B, T = bench_speed.CONFIGS[name]
        fpc = flops_per_char(cell, L, H)
        r = bench_speed.bench_train(name, data, V, ref, ns)
        ours = r["charrnn"]
        line = f"{name:<11} {fpc / 1e6:>10.2f} {ours:>8,.0f} {ours * fpc / 1e9:>8.1f} {ours * fpc / 1e9 / peak2:>8.0%}"
        if "pytorch" in r:
            t = r["pytorch"]
            line += f"   {t:>8,.0f} {t * fpc / 1e9:>6.1f} {t * fpc / 1e9 / peak2:>6.0%}"
        print(line, file=err)
        print(json.dumps({"bench": "flops", "config": name, "flops_per_char": fpc, "charrnn": round(ours),
                          "gflops": round(ours * fpc / 1e9, 1), "fraction_of_peak": round(ours * fpc / 1e9 / peak2, 3),
                          **({"pytorch": round(r["pytorch"])} if "pytorch" in r else {})}))
    print("\nprofile of one step of one worker (half the batch, one thread):", file=err)
    for name in a.only:
        cell, L, H, B, T = bench_speed.CONFIGS[name]
        total, ph = profile_step(cell, L, H, B // 2, T)
        parts = sum(ph.values())  # each phase timed alone: their sum need not be the whole step
        shares = "  ".join(f"{k} {v / parts:.0%}" for k, v in ph.items())
        print(f"{name:<11} {total * 1e3:6.1f} ms whole, phases timed alone sum to {parts / total:.0%} of it: "
              f"{shares}", file=err)
        print(json.dumps({"bench": "profile", "config": name, "step_ms": round(total * 1e3, 2),
                          "phases_ms": {k: round(v * 1e3, 2) for k, v in ph.items()},
                          **{k: round(v / parts, 3) for k, v in ph.items()}}))
    sp = profile_sampling()
    mib = sp["weight bytes"] / 2**20
    print(f"\nsampling, lstm 2x256, batch 1 ({mib:.1f} MiB of weights), us/char by BLAS threads:", file=err)
    for n in (1, 2):
        q = sp[n]
        print(f"  {n} thread{'s' if n > 1 else ' '}: sampler {q['sampler']:.0f} ({1e6 / q['sampler']:,.0f} chars/s), "
              f"network step {q['network step']:.0f}, weight products alone {q['weight products']:.0f} "
              f"({sp['weight bytes'] / q['weight products'] / 1e3:.1f} GB/s)", file=err)
    print(json.dumps({"bench": "sampling_profile", "weight_bytes": sp["weight bytes"],
                      **{f"{k.replace(' ', '_')}_us_{n}t": round(v, 1) for n in (1, 2) for k, v in sp[n].items()}}))
    if not a.no_memory:
        for kind in ("threads", "processes"):
            m = memory(kind)
            print(f"\npeak memory, lstm 2x512 b64 T100, two worker {kind}: rise {m['peak_rise'] / 2**20:.0f} MiB, "
                  f"analytic {m['analytic'] / 2**20:.0f} MiB (params {m['params'] / 2**20:.1f}, grads, Adam 2x, "
                  f"activations {m['activations'] / 2**20:.0f}): {m['ratio']:.2f}x", file=err)
            print(json.dumps({"bench": "memory", "config": "lstm-2x512-b64-T100", "workers": kind, **m}))

if __name__ == "__main__":
    main()
