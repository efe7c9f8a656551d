"""What a model makes of a given text: POST /v1/score, every token's log-probability and their
total (charrnn.Model.score; `charrnn score`'s total for a line is the score of the line with
its line break), and POST /v1/inspect, one unit's activation at every character and the units
that track features of the text (`charrnn inspect --json` and `--find --json`).

Blocking numpy work: app.py runs it off the event loop.
"""
import numpy as np

from charrnn.api import LanguageModel
from charrnn.analysis import activations
from charrnn.errors import CharrnnError
from charrnn.serve.protocol import ApiError, InspectRequest, unknown_symbols
from charrnn.text.decode import lf


def score(served, text: str) -> dict:
    """{"tokens", "token_logprobs", "text_offset", "logprob"}: the text read after a line break,
    every token predicted (without a line break in the vocabulary, the first is the context)."""
    ck = served.checkpoint
    text = lf(text)
    _, unknown = ck.vocab.encode_known(text)
    if unknown:
        raise unknown_symbols(unknown, "the text", "text", len(ck.vocab))
    try:
        s = LanguageModel(ck, served.path).score(text)
    except CharrnnError as e:
        raise ApiError(400, str(e), "text", "invalid_value") from None
    offset = len(text) - sum(len(t) for t in s.tokens)  # the scored tokens end the text
    offsets = []
    for t in s.tokens:
        offsets.append(offset)
        offset += len(t)
    return {"object": "score", "model": served.name, "tokens": s.tokens,
            "token_logprobs": (-s.surprisal).tolist(), "text_offset": offsets, "logprob": s.logprob}


def inspect(served, req: InspectRequest) -> dict:
    """The unit's value at each character of the text (None where the model cannot read it: a
    symbol it never saw) on a scale of ±``scale``, and at character level the ``top`` units per
    feature over every layer."""
    ck = served.checkpoint
    cfg = ck.cfg
    state = req.state or ("c" if cfg.cell == "lstm" else "h")
    if state == "c" and cfg.cell != "lstm":
        raise ApiError(400, f'state "c" is an LSTM\'s cell state; this model is a {cfg.cell}', "state", "invalid_value")
    if req.layer is not None and req.layer >= cfg.layers:
        raise ApiError(400, f"layer {req.layer} is out of range: the model has {cfg.layers} layer(s), 0 to "
                            f"{cfg.layers - 1}", "layer", "invalid_value")
    if req.unit is not None and req.unit >= cfg.hidden:
        raise ApiError(400, f"unit {req.unit} is out of range: a layer has {cfg.hidden} units, 0 to {cfg.hidden - 1}",
                       "unit", "invalid_value")
    text = lf(req.text)  # as the model reads line breaks
    ids, owner = ck.vocab.read(text)
    if len(ids) == 0:
        raise ApiError(400, "nothing to inspect: the text has no symbol the model knows", "text", "invalid_value")
    values = activations.select(activations.run(ck.params, cfg, ids), state)  # (L,T,H)
    layer = cfg.layers - 1 if req.layer is None else req.layer
    unit = int(np.argmax(values[layer].std(axis=0))) if req.unit is None else req.unit  # the most varied
    read = owner >= 0
    per_char = np.full(len(text), np.nan)  # (N,)
    per_char[read] = values[layer, owner[read], unit]
    ranking = None
    if ck.vocab.level == "char":
        feats = activations.features(text)  # of the whole text; ranked where the model reads it
        ranking = activations.rank(values, {k: f[read] for k, f in feats.items()}, top=req.top)
    _, unknown = ck.vocab.encode_known(text)
    return {"object": "inspect", "model": served.name, "state": state, "layer": layer, "unit": unit,
            "layers": cfg.layers, "hidden": cfg.hidden, "scale": max(1.0, float(np.abs(values).max())),
            "text": text, "values": [None if np.isnan(v) else round(float(v), 6) for v in per_char],
            "unknown": list(unknown), "features": ranking}
