"""Labelled text for `charrnn classify`: lines of ``label<TAB>text``, their vocabulary and token ids.

Pure: numpy and the standard library. Every text is read after a line break, the token that
opens it (so an empty text is still a sequence, and the classifier reads a text as the language
model reads a line).
"""
import numpy as np

from charrnn.errors import CorpusError
from charrnn.text.vocab import Vocab, build_vocab
from charrnn.text.decode import decode_bytes

START = "\n"


def parse_tsv(data, errors="strict", name="input", min_labels=2):
    """(labels, texts) from the bytes of a ``label<TAB>text`` file; blank lines are skipped.
    Training needs two labels at least (min_labels); lines to predict may all share one."""
    text = decode_bytes(data, errors, name=name)
    labels, texts = [], []
    for n, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        label, tab, body = line.partition("\t")
        if not tab:
            raise CorpusError(f"{name}: line {n} has no tab; each line must be label<TAB>text")
        if not label.strip():
            raise CorpusError(f"{name}: line {n} has an empty label")
        labels.append(label.strip())
        texts.append(body)
    if not labels:
        raise CorpusError(f"{name}: no labelled lines (label<TAB>text)")
    names = sorted(set(labels))
    if len(names) < min_labels:
        raise CorpusError(f"{name}: every line has the label {names[0]!r}; a classifier needs at least two labels")
    return labels, texts


def label_index(labels):
    """The sorted label names and each line's label as an index into them."""
    names = sorted(set(labels))
    index = {n: i for i, n in enumerate(names)}
    return names, np.array([index[n] for n in labels], dtype=np.int64)


def vocab_for(texts, level, max_vocab=None):
    """The vocabulary of the texts, with the start token in it."""
    return build_vocab(START + START.join(texts), level, max_vocab)


def encode(vocab: Vocab, text, max_len):
    """(ids, unknown symbols): the start token then the text's first max_len - 1 tokens."""
    ids, unknown = vocab.encode_known(START + text)
    return np.asarray(ids[:max_len], dtype=np.int64), unknown


def split(n, val_frac, rng):
    """Shuffled (train, val) index arrays; val takes round(val_frac·n) lines, at least 1 when asked."""
    order = rng.permutation(n)
    k = 0 if val_frac <= 0 else max(1, int(round(val_frac * n)))
    if k >= n:
        raise CorpusError(f"{n} labelled line(s) leave nothing to train on with --val-frac {val_frac}")
    return order[k:], order[:k]
