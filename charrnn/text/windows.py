"""Truncated-BPTT batching: the training/validation split and the B contiguous streams a
window is cut from. Pure: numpy only; ``tokens`` may be a memory map (only the tokens a window
needs are read).

Shapes: T time (--seq-len), B streams (--batch), L tokens per stream.
"""
from __future__ import annotations

import numpy as np

from charrnn.errors import CorpusError


def split_train_val(tokens: np.ndarray, val_frac: float) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): validation is the last ``val_frac`` of the stream (views, no copy)."""
    if not 0 <= val_frac < 1:
        raise ValueError(f"val_frac must be in [0, 1), not {val_frac}")
    n_val = int(len(tokens) * val_frac)
    cut = len(tokens) - n_val
    return tokens[:cut], tokens[cut:]


class Streams:
    """Truncated-BPTT batching over B contiguous streams.

    The tokens are cut into B streams of L = (n-1)//B tokens; window k holds steps
    k*T .. k*T+T-1 of every stream, so hidden state carries over from window k to k+1.
    ``window(k)`` returns time-major int32 ``(x, y)`` of shape (T, B) with
    ``x[t, b] = tokens[b*L + k*T + t]`` and ``y[t, b] = tokens[b*L + k*T + t + 1]``.
    Only the B*(T+1) needed tokens are read, so ``tokens`` may be a memmap.
    """

    def __init__(self, tokens: np.ndarray, batch: int, seq_len: int, what: str = "the corpus",
                 remedies: str = "a smaller --batch or --seq-len"):
        if batch < 1 or seq_len < 1:
            raise ValueError("batch and seq_len must be at least 1")
        if tokens.ndim != 1:
            raise ValueError("tokens must be a 1-D array")
        n = len(tokens)
        if n < batch * seq_len + 1:
            raise CorpusError(
                f"{what} has {n} tokens, too few for one window of --batch {batch} x "
                f"--seq-len {seq_len} (+1); use {remedies}"
            )
        self.tokens, self.batch, self.seq_len = tokens, batch, seq_len
        self.stream_len = (n - 1) // batch
        self.windows_per_epoch = self.stream_len // seq_len
        self._offsets = (np.arange(batch, dtype=np.int64) * self.stream_len)[None, :] + np.arange(
            seq_len + 1, dtype=np.int64
        )[:, None]

    def window(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= k < self.windows_per_epoch:
            raise IndexError(f"window {k} out of range 0..{self.windows_per_epoch - 1}")
        block = np.asarray(self.tokens[self._offsets + k * self.seq_len], dtype=np.int32)
        return np.ascontiguousarray(block[:-1]), np.ascontiguousarray(block[1:])
