"""A charrnn language model as PyTorch reads it: the source of a standalone module (torch,
numpy and safetensors only) and the mapping of the weights (`charrnn export --torch OUT.py`).

    torch_source(cfg, vocab, weights) -> str   the text of OUT.py
    torch_state_dict(params, cfg) -> dict      charrnn's params -> the module's state_dict (numpy)

The module is the stock torch layers: nn.Embedding (when cfg.embed > 0), nn.LSTM / nn.GRU /
nn.RNN(tanh|relu) (batch first, cfg.layers deep), nn.Dropout, nn.Linear. A vanilla RNN with
sigmoid, which nn.RNN lacks, is OUT.py's SigmoidRNN: a time loop with nn.RNN's own parameter
names, so the mapping is the same. One-hot input (cfg.embed == 0) feeds F.one_hot(ids) to a
first layer of input_size V: charrnn's Wx (V,G) is then weight_ih_l0 transposed, as for every
other layer, and the product picks its row without rounding.

The mapping (charrnn multiplies row vectors, x·W; torch W·x: every matrix is transposed; H
hidden, G = k·H, l = layer):

    charrnn key        shape   torch key                    value
    embed.W            (V,E)   embed.weight                 embed.W
    layers.{l}.Wx      (D,G)   rnn.weight_ih_l{l}  (G,D)    Wx[:, P].T
    layers.{l}.Wh      (H,G)   rnn.weight_hh_l{l}  (G,H)    Wh[:, P].T
    layers.{l}.b       (G,)    rnn.bias_ih_l{l}    (G,)     b[P]
    (none)                     rnn.bias_hh_l{l}    (G,)     0          lstm, rnn
    layers.{l}.bh      (H,)    rnn.bias_hh_l{l}    (3H,)    [0, 0, bh] gru: only the n block
    out.V              (H,V)   out.weight          (V,H)    out.V.T
    out.c              (V,)    out.bias            (V,)     out.c

    P, the gate order (charrnn's column blocks -> torch's row blocks), and bh's place are each
    cell's own (its Cell.torch, core/cells/):
    lstm  i f g o -> i f g o   P = identity
    cifg  f g o   -> i f g o   P = [0:H, 0:H, H:2H, 2H:3H], torch's i block negated: the coupled
                               input gate 1 - f is sigmoid(-a_f), so nn.LSTM computes the CIFG
    gru   z r n   -> r z n    P = [H:2H, 0:H, 2H:3H]; bh is b_hn (the third block)
    rnn   one block            P = identity
    A cell without a torch mapping is not exported.

A GRU's b (3H) lies outside the reset gate for all three blocks, so it is torch's b_ih; its
bh (H) lies inside r ⊙ (W_hn h + bh), so it is b_hn, and b_hr = b_hz = 0 (both are the "reset
after" form). The exported encode() reads text as every charrnn command does: a CRLF line
break as "\n". Dropout: charrnn drops every layer's output, the last too; nn.LSTM(dropout=p)
drops all but the last, and the nn.Dropout before `out` the last. In eval() neither drops.
Bidirectional models and classifiers are not exported (they are not language models).
"""
from __future__ import annotations

import inspect
import textwrap

import numpy as np


# --------------------------------------------------------------------------- the mapping

def torch_state_dict(params, cfg):
    """charrnn's parameter dict -> the generated CharRNN's state_dict, as numpy arrays.

    ``cfg`` needs .layers, .hidden, .embed, .torch_order (torch's gate blocks as blocks of
    charrnn's columns), .torch_bh_blocks (the b_hh blocks that hold charrnn's bh) and
    .torch_negated (the blocks that hold their charrnn block negated): OUT.py's
    CONFIG. The arrays keep the parameters' dtype and are C-contiguous copies
    (torch.from_numpy-ready). This function is copied verbatim into OUT.py, so the exporter and
    the exported file share it.
    """
    H = cfg.hidden
    perm = np.concatenate([np.arange(k * H, (k + 1) * H) for k in cfg.torch_order])  # (G,)
    sign = np.concatenate([np.full(H, -1.0 if n in cfg.torch_negated else 1.0)
                           for n in range(len(cfg.torch_order))])  # (G,) -1: an exact sign flip

    def c(a):
        return np.ascontiguousarray(a)

    sd = {}
    if cfg.embed > 0:
        sd["embed.weight"] = c(params["embed.W"])  # (V,E)
    for l in range(cfg.layers):
        Wx, Wh, b = (params[f"layers.{l}.{k}"] for k in ("Wx", "Wh", "b"))
        s = sign.astype(b.dtype)  # (G,)
        sd[f"rnn.weight_ih_l{l}"] = c(Wx[:, perm].T * s[:, None])  # (G,D)
        sd[f"rnn.weight_hh_l{l}"] = c(Wh[:, perm].T * s[:, None])  # (G,H)
        sd[f"rnn.bias_ih_l{l}"] = c(b[perm] * s)  # (G,)
        bhh = np.zeros(len(perm), b.dtype)  # (G,)
        for k in cfg.torch_bh_blocks:  # a GRU's n bias sits inside r ⊙ (·): torch's b_hn
            bhh[k * H:(k + 1) * H] = params[f"layers.{l}.bh"]
        sd[f"rnn.bias_hh_l{l}"] = bhh
    sd["out.weight"] = c(params["out.V"].T)  # (V,H)
    sd["out.bias"] = c(params["out.c"])  # (V,)
    return sd


# --------------------------------------------------------------------------- the generated file

_HEAD = '''\
"""{title}

Written by `charrnn export --torch`; standalone: torch, numpy and safetensors only.

    model = load({weights!r})            # the weights: a charrnn checkpoint is a safetensors file
    logits, state = model(torch.tensor([encode("some text")]))   # ids (B,T) -> logits (B,T,V)
    probs = logits.softmax(-1)                                   # as charrnn's next-token probabilities
    model = load(path, torch.float64)                            # in float64

{model_line}
"""
import re
import types

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

CONFIG = types.SimpleNamespace(**{config!r})
LEVEL = {level!r}  # "char": one token per code point; "word": \\w+ runs, whitespace runs, other chars
UNK = {unk!r}  # id of the unknown token (word level with --max-vocab), else None
TOKENS = {tokens!r}
INDEX = {{t: i for i, t in enumerate(TOKENS)}}
_WORD_RE = re.compile(r"\\w+|\\s+|.", re.DOTALL)


def encode(text):
    """charrnn's Vocab.encode: token ids of text, read as charrnn reads text (a CRLF line
    break as "\\n"; unknown: UNK, or KeyError)."""
    text = text.replace("\\r\\n", "\\n")
    toks = text if LEVEL == "char" else _WORD_RE.findall(text)
    if UNK is None:
        return [INDEX[t] for t in toks]
    return [INDEX.get(t, UNK) for t in toks]


def decode(ids):
    return "".join(TOKENS[int(i)] for i in ids)
'''

_SIGMOID_RNN = '''

class SigmoidRNN(nn.Module):
    """nn.RNN with h_t = sigmoid(W_ih x_t + b_ih + W_hh h_(t-1) + b_hh), which nn.RNN lacks.

    Same parameter names and shapes as nn.RNN(batch_first=True), same (out, h_n) interface;
    the input product runs over all steps at once, only h·W_hhᵀ loops over time.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, dropout=0.0):
        super().__init__()
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        for l in range(num_layers):
            D = input_size if l == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{l}", nn.Parameter(torch.empty(hidden_size, D)))
            self.register_parameter(f"weight_hh_l{l}", nn.Parameter(torch.empty(hidden_size, hidden_size)))
            self.register_parameter(f"bias_ih_l{l}", nn.Parameter(torch.zeros(hidden_size)))
            self.register_parameter(f"bias_hh_l{l}", nn.Parameter(torch.zeros(hidden_size)))
        k = hidden_size ** -0.5
        for p in self.parameters():
            nn.init.uniform_(p, -k, k)  # nn.RNN's initialisation

    def forward(self, x, h0=None):
        B, T, _ = x.shape
        if h0 is None:
            h0 = x.new_zeros(self.num_layers, B, self.hidden_size)
        finals = []
        for l in range(self.num_layers):
            if l > 0 and self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, True)
            W_hh = getattr(self, f"weight_hh_l{l}")
            xp = F.linear(x, getattr(self, f"weight_ih_l{l}"),
                          getattr(self, f"bias_ih_l{l}") + getattr(self, f"bias_hh_l{l}"))  # (B,T,H)
            h, hs = h0[l], []
            for t in range(T):
                h = torch.sigmoid(torch.addmm(xp[:, t], h, W_hh.t()))
                hs.append(h)
            x = torch.stack(hs, 1)  # (B,T,H)
            finals.append(h)
        return x, torch.stack(finals)
'''

_MODEL = '''

class CharRNN(nn.Module):
    """{summary}

    forward(ids (B,T) integer tensor, state=None) -> (logits (B,T,V), state); state is torch's layout,
    (L,B,H) per tensor: {state_doc}; None starts from zeros, as charrnn's zero_state.
    softmax(logits) equals charrnn's next-token probabilities.
    """

    def __init__(self, dtype=torch.float32):
        super().__init__()
        V, E, H, L = CONFIG.vocab_size, CONFIG.embed, CONFIG.hidden, CONFIG.layers
{embed_init}        self.rnn = {rnn_ctor}
        self.drop = nn.Dropout(CONFIG.dropout)  # charrnn drops the last layer's output too
        self.out = nn.Linear(H, V)
        self.to(dtype)

    def forward(self, ids, state=None):
{input_code}        y, state = self.rnn(x, state)
        return self.out(self.drop(y)), state
'''

_TAIL = '''

{mapping_source}

def load_charrnn_weights(model, arrays):
    """Load charrnn's parameter arrays (dict-like: keys as in charrnn's params, e.g. "layers.0.Wx",
    optionally prefixed "param/" as in the checkpoint container) into a CharRNN; strict: every
    torch parameter must be covered. Values are cast to the model's dtype."""
    params = {{k[len("param/"):] if k.startswith("param/") else k: np.asarray(arrays[k])
              for k in arrays.keys() if not k.startswith(("opt/", "state/"))}}
    sd = torch_state_dict(params, CONFIG)
    model.load_state_dict({{k: torch.from_numpy(v) for k, v in sd.items()}}, strict=True)
    return model


def load(path={weights!r}, dtype=torch.float32):
    """A CharRNN in eval mode with the weights of a charrnn checkpoint (format 2 is safetensors)."""
    from safetensors.numpy import load_file
    model = CharRNN(dtype)
    load_charrnn_weights(model, load_file(path))
    return model.eval()


def state_from_charrnn(state, dtype=torch.float32):
    """charrnn's state (per layer a tuple of (B,H) arrays: (h,) or (h, c)) -> this module's."""
    parts = [torch.stack([torch.as_tensor(np.asarray(s[i]), dtype=dtype) for s in state])
             for i in range(len(state[0]))]  # (L,B,H) each
    return tuple(parts) if len(CONFIG.state) > 1 else parts[0]


def state_to_charrnn(state):
    """This module's state -> charrnn's (per layer a tuple of (B,H) numpy arrays)."""
    parts = state if len(CONFIG.state) > 1 else (state,)
    return [tuple(p[l].detach().cpu().numpy() for p in parts) for l in range(CONFIG.layers)]
'''

def _cfg_dict(cfg, torch):
    from charrnn.core import cells
    return {"vocab_size": int(cfg.vocab_size), "cell": cfg.cell, "activation": cfg.activation,
            "layers": int(cfg.layers), "hidden": int(cfg.hidden), "embed": int(cfg.embed),
            "dropout": float(cfg.dropout), "torch_order": list(torch.order), "torch_bh_blocks": list(torch.bh_blocks),
            "torch_negated": list(torch.negated),
            "state": list(cells.get(cfg.cell).state)}


def exportable(cfg):
    """The cell's torch mapping, or NotImplementedError saying why this model does not export."""
    from charrnn.core import cells
    if getattr(cfg, "labels", 0):
        raise NotImplementedError("a sequence classifier: only language models are exported")
    if getattr(cfg, "bidirectional", False):
        raise NotImplementedError("a bidirectional model is not a language model")
    torch = cells.get(cfg.cell).torch
    if torch is None:
        raise NotImplementedError(f"a {cfg.cell} has no PyTorch counterpart to export to")
    return torch


def torch_source(cfg, vocab, weights, title=None):
    """The text of a standalone OUT.py defining CharRNN for ``cfg``, with ``vocab`` embedded.

    ``vocab`` is a charrnn Vocab (level, tokens, unk). The file holds no weights: its load()
    reads them from ``weights``, a safetensors file (a charrnn checkpoint of format 2); its
    load_charrnn_weights(model, arrays) takes any dict of charrnn's param arrays.
    """
    from charrnn.core import cells
    torch = exportable(cfg)
    V, E, H, L = cfg.vocab_size, cfg.embed, cfg.hidden, cfg.layers
    rnn = torch.module == "nn.RNN"  # takes a nonlinearity: tanh or relu; sigmoid is OUT.py's own SigmoidRNN
    sigmoid = rnn and cfg.activation == "sigmoid"

    # nn.LSTM warns about dropout with one layer; its dropout only acts between layers anyway
    drop = "CONFIG.dropout if L > 1 else 0.0"
    if sigmoid:
        rnn_ctor = f"SigmoidRNN({'E' if E else 'V'}, H, L, dropout={drop})"
    elif rnn:
        rnn_ctor = (f"nn.RNN({'E' if E else 'V'}, H, L, nonlinearity={cfg.activation!r}, batch_first=True, "
                    f"dropout={drop})")
    else:
        rnn_ctor = f"{torch.module}({'E' if E else 'V'}, H, L, batch_first=True, dropout={drop})"
    if E > 0:
        embed_init = "        self.embed = nn.Embedding(V, E)\n"
        input_code = "        x = self.embed(ids)  # (B,T,E)\n"
    else:
        embed_init = ""
        input_code = ("        # one-hot input: weight_ih_l0 (G,V) is charrnn's Wx transposed; the product picks\n"
                      "        # column ids[b,t] of it exactly (one 1, exact zeros elsewhere)\n"
                      "        x = F.one_hot(ids.long(), CONFIG.vocab_size).to(self.out.weight.dtype)  # (B,T,V)\n")
    kind = f"{cfg.cell.upper()}" + (f" ({cfg.activation})" if rnn else "")
    inp = f"an embedding of width {E}" if E else f"one-hot input over the {V} tokens"
    summary = f"charrnn {kind}, {L} layer{'s' if L > 1 else ''} of {H}, {inp}, {vocab.level} level."
    state_doc = f"a tuple ({', '.join(cells.get(cfg.cell).state)})" if len(cells.get(cfg.cell).state) > 1 else "h"
    model_line = (f"Model: {summary} torch: {rnn_ctor.split('(')[0]}"
                  + (" (a Python time loop: nn.RNN has no sigmoid)" if sigmoid else ""))
    mapping = textwrap.dedent(inspect.getsource(torch_state_dict))
    src = _HEAD.format(title=title or f"charrnn {kind} language model, exported to PyTorch.", weights=weights,
                       model_line=model_line, config=_cfg_dict(cfg, torch), level=vocab.level, unk=vocab.unk,
                       tokens=list(vocab.tokens))
    if sigmoid:
        src += _SIGMOID_RNN
    src += _MODEL.format(summary=summary, state_doc=state_doc, embed_init=embed_init, rnn_ctor=rnn_ctor,
                         input_code=input_code)
    src += _TAIL.format(mapping_source=mapping, weights=weights)
    compile(src, "OUT.py", "exec")  # a syntax error here is the exporter's bug, not the user's
    return src
