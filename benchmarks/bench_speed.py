"""Training and sampling throughput: charrnn against PyTorch, side by side in one process.

    python benchmarks/bench_speed.py                # all configurations
    python benchmarks/bench_speed.py --only lstm-2x256 --window-sec 3 --rounds 3

Reads ../shared/corpora/tinyshakespeare.txt (skips when absent). The PyTorch model is the one
in ../shared/bench/torch_reference.py (one-hot -> nn.LSTM/GRU/RNN -> Linear, Adam 2e-3,
clip_grad_norm_ 5, float32, 2 threads); ours is the same network (--embed 0 reads one-hot
input as a row gather of Wx), same optimizer, clipping, batch and window, split between two
workers as `charrnn train` does it (processes or threads: charrnn/workers.py; --compare-threads
times both kinds), with the recurrent product in column blocks where `charrnn` takes them
(core/products.py; --compare-blocks times it without them too).
They are timed in alternating windows so machine noise hits all alike; the ratio is ours /
PyTorch. Sampling is timed as `charrnn sample --threads 2` runs it (two BLAS threads).
Prints a table on stderr and one JSON object per measurement on stdout.
"""
import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import charrnn  # noqa: E402
charrnn._one_blas_thread()  # before numpy loads: one BLAS thread per worker, as `charrnn train` runs
import numpy as np  # noqa: E402
from charrnn import blas
from charrnn.training import workers  # noqa: E402
from charrnn.core import model, optim, products, shards  # noqa: E402
from charrnn.config.model import ModelConfig  # noqa: E402
from charrnn.core.sampling import Sampler  # noqa: E402
from charrnn.text.windows import Streams  # noqa: E402

SHARED = ROOT.parent / "shared"
CORPUS = SHARED / "corpora" / "tinyshakespeare.txt"
CONFIGS = {  # name: (cell, layers, hidden, batch, seq_len)
    "lstm-2x256": ("lstm", 2, 256, 32, 100),
    "lstm-2x512": ("lstm", 2, 512, 64, 100),
    "gru-2x256": ("gru", 2, 256, 32, 100),
    "rnn-2x256": ("rnn", 2, 256, 32, 100),
}


def load_corpus():
    text = CORPUS.read_text(encoding="utf-8")
    chars = sorted(set(text))
    idx = {c: i for i, c in enumerate(chars)}
    return np.fromiter((idx[c] for c in text), dtype=np.int32, count=len(text)), len(chars)


class Ours:
    """charrnn's training step: with processes="auto" as `charrnn train` takes it (worker
    processes where workers.worth_it says so, else threads); True or False forces one. ``limit``
    is the product block limit its workers run with (core/products.py)."""

    def __init__(self, cell, layers, hidden, batch, seq_len, data, V, n, processes=True, limit=None):
        self.n, self.limit = n, blas.product_limit() if limit is None else limit
        self.cfg = ModelConfig(vocab_size=V, cell=cell, layers=layers, hidden=hidden, embed=0)
        self.params = model.init_params(self.cfg, np.random.default_rng(0))
        use = workers.worth_it(self.cfg, batch, n) if processes == "auto" else processes and n > 1
        self.pool = workers.Workers(self.params, self.cfg, n, batch, self.limit) if use and workers.available() else None
        if self.pool is not None:
            self.params = self.pool.params
        self.opt = optim.make_optimizer("adam")
        self.ost = self.opt.init_state(self.params)
        self.streams = Streams(data, batch, seq_len)
        self.k, self.state = 0, model.zero_state(self.cfg, batch)

    def step(self):
        if self.k >= self.streams.windows_per_epoch:
            self.k, self.state = 0, model.zero_state(self.cfg, self.streams.batch)
        x, y = self.streams.window(self.k)
        self.k += 1
        if self.pool is not None:
            _, grads, self.state = self.pool.loss_and_grads(x, y, self.state)
        else:
            _, grads, self.state = shards.loss_and_grads(self.params, self.cfg, x, y, self.state, workers=self.n,
                                                        block_limit=self.limit)
        optim.clip_global_norm(grads, 5.0)
        self.opt.step(self.params, grads, self.ost, 2e-3, workers=self.n)

    def close(self):
        if self.pool is not None:
            self.pool.close()


def torch_reference():
    path = SHARED / "bench" / "torch_reference.py"
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    spec = importlib.util.spec_from_file_location("torch_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Theirs:
    def __init__(self, ref, cell, layers, hidden, batch, seq_len, data, V):
        import torch
        import torch.nn.functional as F
        self.torch, self.F, self.ref = torch, F, ref
        torch.manual_seed(0)
        self.model = ref.CharRNN(cell, V, hidden, layers)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=2e-3)
        self.B, self.T, self.V = batch, seq_len, V
        L = (len(data) - 1) // batch
        d = data.astype(np.int64)
        self.xs = torch.from_numpy(np.stack([d[i * L:(i + 1) * L] for i in range(batch)]))
        self.ys = torch.from_numpy(np.stack([d[i * L + 1:(i + 1) * L + 1] for i in range(batch)]))
        self.L, self.pos, self.h = L, 0, None

    def step(self):
        torch, F = self.torch, self.F
        if self.pos + self.T > self.L:
            self.pos, self.h = 0, None
        s = slice(self.pos, self.pos + self.T)
        self.pos += self.T
        logits, h = self.model(self.xs[:, s].t().contiguous(), self.h)
        loss = F.cross_entropy(logits.reshape(-1, self.V), self.ys[:, s].t().contiguous().reshape(-1))
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 5.0)
        self.opt.step()
        self.h = self.ref.detach(h)


def timed(step, chars_per_call, seconds):
    t0, n = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        step()
        n += 1
    return chars_per_call * n / (time.perf_counter() - t0)


def bench_train(name, data, V, ref, a):
    cell, layers, hidden, batch, seq_len = CONFIGS[name]
    impls = {"charrnn": Ours(cell, layers, hidden, batch, seq_len, data, V, a.threads, processes="auto")}
    if getattr(a, "compare_threads", False):  # both kinds of worker, whichever charrnn picks
        impls["charrnn_processes"] = Ours(cell, layers, hidden, batch, seq_len, data, V, a.threads, processes=True)
        impls["charrnn_threads"] = Ours(cell, layers, hidden, batch, seq_len, data, V, a.threads, processes=False)
    if getattr(a, "compare_blocks", False):  # the same without the product's column blocks
        impls["charrnn_no_blocks"] = Ours(cell, layers, hidden, batch, seq_len, data, V, a.threads,
                                          processes="auto", limit=0)
    if ref is not None:
        impls["pytorch"] = Theirs(ref, cell, layers, hidden, batch, seq_len, data, V)
    rates = {k: [] for k in impls}
    for impl in impls.values():  # warm up
        for _ in range(2):
            impl.step()
    order = list(impls.items())
    for _ in range(a.rounds):
        for k, impl in order:
            rates[k].append(timed(impl.step, batch * seq_len, a.window_sec))
        order.reverse()  # no one always runs first, right after another's spinning threads
    for impl in impls.values():
        getattr(impl, "close", lambda: None)()
    return {k: statistics.median(v) for k, v in rates.items()}


def bench_sample(data, V, ref, a, length=2000):
    cfg = ModelConfig(vocab_size=V, cell="lstm", layers=2, hidden=256, embed=0)
    params = model.init_params(cfg, np.random.default_rng(0))
    rng = np.random.default_rng(0)

    def ours():  # as `charrnn sample --threads N` runs it: N BLAS threads share each product
        with blas.threads(a.threads):
            s = Sampler(model.Stepper(params, cfg), rng, temp=0.8)
            s.feed(0)
            for _ in range(length):
                s.draw()

    runs = {"charrnn": ours}
    if ref is not None:
        import torch
        tm = ref.CharRNN("lstm", V, 256, 2).eval()

        @torch.no_grad()
        def theirs():
            x, h = torch.zeros(1, 1, dtype=torch.long), None
            for _ in range(length):
                logits, h = tm(x, h)
                p = torch.softmax(logits[-1, 0] / 0.8, dim=-1)
                x = torch.multinomial(p, 1).view(1, 1)

        runs["pytorch"] = theirs
    rates = {k: [] for k in runs}
    for _ in range(a.rounds):
        for k, f in runs.items():
            t0 = time.perf_counter()
            f()
            rates[k].append(length / (time.perf_counter() - t0))
    return {k: statistics.median(v) for k, v in rates.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=list(CONFIGS), default=list(CONFIGS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window-sec", type=float, default=4.0)
    ap.add_argument("--threads", type=int, default=2, help="PyTorch threads, charrnn worker threads, charrnn sampling BLAS threads")
    ap.add_argument("--no-sample", action="store_true")
    ap.add_argument("--compare-threads", action="store_true",
                    help="also time charrnn's worker threads beside its worker processes")
    ap.add_argument("--compare-blocks", action="store_true",
                    help="also time charrnn without the recurrent product's column blocks")
    a = ap.parse_args()
    if not CORPUS.exists():
        print(f"skipped: {CORPUS} not found", file=sys.stderr)
        return
    ref = torch_reference()
    if ref is not None:
        import torch
        torch.set_num_threads(a.threads)
    data, V = load_corpus()
    limit = blas.product_limit()  # as the charrnn command takes it
    print(f"numpy {np.__version__}, torch {'absent' if ref is None else __import__('torch').__version__}, "
          f"{a.threads} threads, {a.rounds} rounds x {a.window_sec}s, OpenBLAS kernels {blas.corename()}, "
          f"product blocks {'on' if limit else 'off'}", file=sys.stderr)
    print(f"{'config':<12} {'charrnn chars/s':>16} {'pytorch chars/s':>16} {'ratio':>7}", file=sys.stderr)
    for name in a.only:
        r = bench_train(name, data, V, ref, a)
        ratio = r["charrnn"] / r["pytorch"] if "pytorch" in r else None
        extra = f"   processes {r['charrnn_processes']:,.0f}, threads {r['charrnn_threads']:,.0f} chars/s: " \
                f"{r['charrnn_processes'] / r['charrnn_threads']:.2f}x" if "charrnn_threads" in r else ""
        if "charrnn_no_blocks" in r:
            extra += f"   without blocks {r['charrnn_no_blocks']:,.0f} chars/s: with/without " \
                     f"{r['charrnn'] / r['charrnn_no_blocks']:.2f}x"
        print(f"{name:<12} {r['charrnn']:>16,.0f} {r.get('pytorch', float('nan')):>16,.0f} "
              f"{'-' if ratio is None else f'{ratio:.2f}x':>7}{extra}", file=sys.stderr)
        print(json.dumps({"bench": "train", "config": name, **{k: round(v) for k, v in r.items()},
                          "ratio": None if ratio is None else round(ratio, 3)}), flush=True)
    if not a.no_sample:
        r = bench_sample(data, V, ref, a)
        ratio = r["charrnn"] / r["pytorch"] if "pytorch" in r else None
        print(f"{'sample b1':<12} {r['charrnn']:>16,.0f} {r.get('pytorch', float('nan')):>16,.0f} "
              f"{'-' if ratio is None else f'{ratio:.2f}x':>7}   (lstm 2x256, temp 0.8)", file=sys.stderr)
        print(json.dumps({"bench": "sample", "config": "lstm-2x256-b1", **{k: round(v) for k, v in r.items()},
                          "ratio": None if ratio is None else round(ratio, 3)}), flush=True)


if __name__ == "__main__":
    main()
