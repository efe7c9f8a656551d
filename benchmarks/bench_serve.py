"""`charrnn serve` under load, against `charrnn sample` on the same machine, in one run.

    python benchmarks/bench_serve.py                 # about five minutes
    python benchmarks/bench_serve.py --quick         # a smoke run: small counts
    python benchmarks/bench_serve.py --soak 50000    # a longer soak

An LSTM 2×256 over a 65-symbol vocabulary (random weights: throughput does not depend on
what was learned), saved as a checkpoint. Measured, each in a process of its own with
OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset (the kernel OpenBLAS then picks is printed):

  1. the step itself: one batched step of B rows, B = 1 … 16, in this process (why the engine
     packs the rows into buckets of 1, 2, 4, … rather than always stepping all its slots), and
     the ceiling it sets: the 16-row step's multiply-adds per second against this core's rate
     on a large (1024³) product, and 16·t(1)/t(16), the most 16 streams can gain over one;
  2. one stream: `charrnn sample --length N` against one streamed completion of N tokens from
     the server, in alternating rounds; characters per second from the first to the last byte;
  3. 16 streams at once: 16 clients each asking for completions of M tokens back to back for
     a while; their total characters per second, and the time to first token (request sent to
     first token received) at the 50th and 99th percentiles;
  4. a soak: R short requests (8 tokens, streamed and whole in turn) from 32 clients on
     keep-alive connections; errors counted, the server's resident memory after warm-up and at
     the end, and its access lines counted (one per request).

The clients are a minimal HTTP/1.1 client on asyncio in this process (no JSON decoding per
event), so they take little of the two cores from the server. Prints a table on stderr and
one JSON object per measurement on stdout.
"""
import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import charrnn  # noqa: E402
charrnn._one_blas_thread()  # as the command line runs
import numpy as np  # noqa: E402

from charrnn.core import model  # noqa: E402
from charrnn.config.model import ModelConfig  # noqa: E402
from charrnn.checkpoint import schema  # noqa: E402
from charrnn.store import container  # noqa: E402
from charrnn.text.vocab import build_vocab  # noqa: E402

ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # tinyshakespeare's 65
ENV = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
PRIME = "The "


def say(line):
    print(line, file=sys.stderr, flush=True)


def emit(**record):
    print(json.dumps(record), flush=True)


def make_checkpoint(root):
    vocab = build_vocab(ALPHABET, "char")
    cfg = ModelConfig(vocab_size=len(vocab), cell="lstm", layers=2, hidden=256)
    params = model.init_params(cfg, np.random.default_rng(0))
    run = root / "bench"
    run.mkdir()
    arrays, meta = schema.pack(schema.Checkpoint(cfg, params, vocab, step=1))
    container.save(str(run / "best.ckpt"), arrays, meta)
    return str(run)


def kernel():
    code = "from charrnn import blas; print(blas.corename())"
    return subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True).stdout.strip()


# --------------------------------------------------------------------------- 1. the step

def step_times(run, rows=(1, 2, 4, 8, 16), seconds=1.5):
    code = f"""
import time, numpy as np, charrnn
from charrnn import blas
from charrnn.core import model
ck = charrnn.load({run!r})._ck
for B in {rows!r}:
    s = model.Stepper(ck.params, ck.cfg, B=B, block_limit=blas.product_limit() if B > 1 else 0)
    ids = np.zeros(B, dtype=np.int64)
    for _ in range(50): s.step(ids)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < {seconds}:
        s.step(ids); n += 1
    print(B, (time.perf_counter() - t0) / n * 1e6)
# multiply-adds of one row's step: every weight matrix a product reads (a one-hot layer 0 gathers rows of Wx)
macs = sum(v.size for k, v in ck.params.items()
           if k.endswith((".Wh", "out.V")) or k.endswith(".Wx") and (ck.cfg.embed > 0 or not k.startswith("layers.0.")))
a, b = np.ones((1024, 1024), np.float32), np.ones((1024, 1024), np.float32)
for _ in range(3): a @ b
n, t0 = 0, time.perf_counter()
while time.perf_counter() - t0 < {seconds}:
    a @ b; n += 1
print("macs", macs, 1024 ** 3 * n / (time.perf_counter() - t0))
"""
    out = subprocess.run([sys.executable, "-c", code], env={**ENV, "OPENBLAS_NUM_THREADS": "1"}, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    _, macs, peak = out.pop().split()
    return {int(b): float(us) for b, us in (line.split() for line in out)}, int(macs), float(peak)


# --------------------------------------------------------------------------- 2. one stream

def sample_rate(run, n, threads):
    """`charrnn sample`'s characters per second, from its first byte to its last."""
    p = subprocess.Popen([sys.executable, "-m", "charrnn", "sample", "--checkpoint", run, "--prime", PRIME,
                          "--length", str(n), "--seed", "1", "--threads", str(threads)], stdout=subprocess.PIPE,
                         env=ENV)
    first, got = None, 0
    while chunk := p.stdout.read1(65536):
        first = first or time.perf_counter()
        got += len(chunk)
    end = time.perf_counter()
    assert p.wait() == 0 and got == len(PRIME) + n, got
    return n / (end - first)


class Server:
    """`charrnn serve` in a process of its own; its stderr goes to a file (one line per request)."""

    def __init__(self, run, log_path, streams):
        self.log = open(log_path, "w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "charrnn", "serve", run, "--port", "0", "--max-streams",
                                      str(streams), "--max-tokens", "1000000"], stderr=self.log, env=ENV)
        deadline = time.time() + 60
        while time.time() < deadline:
            m = re.search(r"serving at http://([\d.]+):(\d+)/", Path(log_path).read_text())
            if m:
                self.host, self.port = m.group(1), int(m.group(2))
                return
            time.sleep(0.05)
        raise RuntimeError("charrnn serve did not start:\n" + Path(log_path).read_text())

    def rss_mib(self):
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


class Connection:
    """One keep-alive HTTP/1.1 connection: POST a completion, read its answer as it comes."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def post(self, body):
        """(status, seconds to the first body bytes, seconds to the end, the body)."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode()
        t0 = time.perf_counter()
        self.writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n" % len(data) + data)
        head = (await self.reader.readuntil(b"\r\n\r\n")).lower()
        status = int(head.split(b" ")[1])
        first, parts = None, []
        if b"transfer-encoding: chunked" in head:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                chunk = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                first = first or time.perf_counter()
                parts.append(chunk[:-2])
        else:
            length = int(re.search(rb"content-length: (\d+)", head).group(1))
            parts.append(await self.reader.readexactly(length))
            first = time.perf_counter()
        return status, first - t0, time.perf_counter() - t0, b"".join(parts)


def server_rate(srv, n):
    """One streamed completion of n tokens: characters per second from its first to its last byte."""
    async def one():
        c = Connection(srv.host, srv.port)
        status, first, end, body = await c.post({"model": "bench", "prompt": PRIME, "max_tokens": n, "seed": 1,
                                                 "stream": True})
        c.writer.close()
        assert status == 200 and body.endswith(b"data: [DONE]\n\n"), body[-200:]
        return n / (end - first)
    return asyncio.run(one())


# --------------------------------------------------------------------------- 3. many streams

def concurrent(srv, streams, tokens, seconds):
    """Each of ``streams`` clients asks for completions of ``tokens`` until ``seconds`` passed:
    (total characters per second, [time to first token of each request])."""
    async def main():
        ttft, done = [], [0]
        t0 = time.perf_counter()

        async def client(k):
            c = Connection(srv.host, srv.port)
            i = 0
            while time.perf_counter() - t0 < seconds:
                status, first, _, body = await c.post({"model": "bench", "prompt": PRIME, "max_tokens": tokens,
                                                       "seed": 1000 * k + i, "stream": True})
                assert status == 200 and b'"finish_reason":"length"' in body, body[-300:]
                ttft.append(first)
                done[0] += tokens
                i += 1
            c.writer.close()
        await asyncio.gather(*(client(k) for k in range(streams)))
        return done[0] / (time.perf_counter() - t0), ttft
    return asyncio.run(main())


# --------------------------------------------------------------------------- 4. soak

def soak(srv, requests, clients, warm_up):
    """(errors, RSS after warm-up, RSS at the end, the largest RSS seen, seconds)."""
    async def main():
        left, errors, rss = [requests], [], {}
        t0 = time.perf_counter()

        async def client(k):
            c = Connection(srv.host, srv.port)
            while left[0] > 0:
                left[0] -= 1
                i = requests - left[0]
                stream = i % 2 == 0
                try:
                    status, _, _, body = await c.post({"model": "bench", "prompt": PRIME, "max_tokens": 8, "seed": i,
                                                       "stream": stream})
                    ok = status == 200 and (body.endswith(b"data: [DONE]\n\n") if stream else
                                            len(json.loads(body)["choices"][0]["text"]) == 8)
                except (OSError, asyncio.IncompleteReadError, ValueError) as e:
                    ok, body = False, repr(e).encode()
                if not ok:
                    errors.append(body[:200])
                if i == warm_up:
                    rss["warm"] = srv.rss_mib()
                rss["max"] = max(rss.get("max", 0), srv.rss_mib()) if i % 250 == 0 else rss.get("max", 0)
            c.writer.close()
        await asyncio.gather(*(client(k) for k in range(clients)))
        return errors, rss["warm"], srv.rss_mib(), rss["max"], time.perf_counter() - t0
    return asyncio.run(main())


def access_lines(path):
    return sum('"POST /v1/completions"' in line for line in open(path))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds of the one-stream comparison")
    ap.add_argument("--soak", type=int, default=None, metavar="N", help="requests of the soak [default: 10,000]")
    a = ap.parse_args()
    n = 3000 if a.quick else 20_000  # one stream's characters
    window = 4 if a.quick else 20  # seconds of 16 streams
    requests = a.soak or (1000 if a.quick else 10_000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    run = make_checkpoint(tmp)
    say(f"LSTM 2x256, 65 symbols; OpenBLAS kernels {kernel()} (OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE unset); "
        f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")

    steps, macs, peak = step_times(run)
    say("one step of B rows: " + ", ".join(f"B={b} {us:.0f} us ({b / us * 1e6:,.0f} rows/s)" for b, us in steps.items()))
    emit(measure="step_us", **{str(b): round(us, 1) for b, us in steps.items()})
    # the ceiling: 16 streams can gain at most t(1)·16 / t(16); a 16-row step near the core's own
    # large-product rate is bound by arithmetic, and no packing of rows buys more
    rate16 = macs * 16 / steps[16] * 1e6
    most = 16 * steps[1] / steps[16]
    say(f"a row's step is {macs:,} multiply-adds: at 16 rows {rate16 / 1e9:.1f} G/s, this core's 1024^3 product "
        f"{peak / 1e9:.1f} G/s ({rate16 / peak:.0%}); so 16 streams can be at most {most:.1f}x one")
    emit(measure="step_ceiling", macs_per_row=macs, step16_gmacs=round(rate16 / 1e9, 2),
         core_gmacs=round(peak / 1e9, 2), most_16_vs_1=round(most, 2))

    srv = Server(run, tmp / "serve.log", streams=32)
    try:
        rates = {"sample --threads 1": [], "sample --threads 2": [], "serve, one stream": []}
        for _ in range(a.rounds):  # alternating, so the machine's noise hits all alike
            rates["sample --threads 1"].append(sample_rate(run, n, 1))
            rates["serve, one stream"].append(server_rate(srv, n))
            rates["sample --threads 2"].append(sample_rate(run, n, 2))
        one = {k: statistics.median(v) for k, v in rates.items()}
        for k, v in one.items():
            say(f"{k:>20}: {v:8,.0f} chars/s (median of {a.rounds}: {', '.join(f'{x:,.0f}' for x in rates[k])})")
        say(f"serve one stream / sample --threads 1: {one['serve, one stream'] / one['sample --threads 1']:.2f}x, "
            f"/ sample --threads 2: {one['serve, one stream'] / one['sample --threads 2']:.2f}x")
        emit(measure="one_stream_chars_per_s", **{k: round(v) for k, v in one.items()})

        total, ttft = concurrent(srv, 16, 500, window)
        q = np.percentile(np.array(ttft) * 1000, [50, 99])
        say(f"16 streams: {total:,.0f} chars/s in total ({total / one['serve, one stream']:.1f}x one stream); "
            f"time to first token p50 {q[0]:.1f} ms, p99 {q[1]:.1f} ms over {len(ttft)} requests")
        emit(measure="16_streams", chars_per_s=round(total), vs_one_stream=round(total / one["serve, one stream"], 2),
             ttft_p50_ms=round(q[0], 2), ttft_p99_ms=round(q[1], 2), requests=len(ttft))

        before = access_lines(tmp / "serve.log")
        errors, warm, end, peak, took = soak(srv, requests, 32, warm_up=requests // 10)
        lines = access_lines(tmp / "serve.log") - before
        say(f"soak: {requests:,} requests from 32 clients in {took:.1f} s ({requests / took:,.0f}/s), {len(errors)} "
            f"errors; resident memory {warm:.1f} MiB after {requests // 10:,} requests, {end:.1f} MiB at the end "
            f"(largest seen {peak:.1f}); {lines:,} access lines")
        emit(measure="soak", requests=requests, errors=len(errors), seconds=round(took, 1), rss_warm_mib=round(warm, 1),
             rss_end_mib=round(end, 1), rss_max_mib=round(peak, 1), access_lines=lines,
             first_errors=[e.decode("latin-1") for e in errors[:3]])
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
