"""How closely the PyTorch export (`charrnn export --torch`) reproduces charrnn's next-token
probabilities for a trained checkpoint, over a real text, in float32 and float64.

    python benchmarks/bench_export.py CHECKPOINT TEXT [--chars 3000]

Prints, for each precision, the largest difference in any token's probability over the text's
first --chars tokens (one window, the state carried from the first token), with this CPU's
OpenBLAS kernels: rounding differs between machines, so a figure is quoted with its machine.
Needs torch (skips without it).
"""
import argparse
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

from charrnn import blas
from charrnn.checkpoint import schema
from charrnn.core import layers, model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("text")
    ap.add_argument("--chars", type=int, default=3000)
    a = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("skipped: torch is not installed", file=sys.stderr)
        return
    ck = schema.load(a.checkpoint)
    text = open(a.text, encoding="utf-8-sig").read().replace("\r\n", "\n")[:a.chars]
    ids = ck.vocab.encode(text)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "exported.py")
        subprocess.run([sys.executable, "-m", "charrnn", "export", "--torch", out, "--checkpoint", a.checkpoint],
                       check=True)
        spec = importlib.util.spec_from_file_location("exported", out)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for dtype, tdtype in ((np.float32, torch.float32), (np.float64, torch.float64)):
            p = {k: v.astype(dtype) for k, v in ck.params.items()}
            logits, _, _ = model.forward(p, ck.cfg, np.asarray(ids)[:, None], model.zero_state(ck.cfg, 1, dtype))
            ours = np.exp(layers.log_softmax(logits[:, 0].astype(np.float64)))
            net = mod.load(a.checkpoint, tdtype)
            with torch.no_grad():
                theirs = net(torch.tensor([ids.tolist()]))[0][0].softmax(-1).double().numpy()
            print(f"{np.dtype(dtype).name}: largest probability difference {np.abs(theirs - ours).max():.2g} "
                  f"over {len(ids):,} tokens")
    print(f"{ck.cfg.layers}x{ck.cfg.hidden} {ck.cfg.cell}; {platform.processor() or platform.machine()}, "
          f"OpenBLAS kernels {blas.corename()}, torch {torch.__version__}")


if __name__ == "__main__":
    main()
