"""The continuous batcher without HTTP: streams share steps, keep their own seeds, free their
slot when let go; stop sequences are held back and cut as OpenAI cuts them."""
import threading

import numpy as np
import pytest

from charrnn.api import LanguageModel
from charrnn.core import model
from charrnn.config.model import ModelConfig
from charrnn.serve.engine import Busy, Closed, Engine, bucket
from charrnn.serve.protocol import Completion
from charrnn.serve.stream import End, Failed, Job, Piece
from charrnn.serve.stops import StopText
from charrnn.checkpoint import schema
from charrnn.text.vocab import build_vocab

VOCAB = build_vocab('abcdefgh ijklmnop\n."()', "char")


def checkpoint(hidden=24, seed=0, cell="lstm", nan=False):
    cfg = ModelConfig(vocab_size=len(VOCAB), cell=cell, layers=2, hidden=hidden)
    params = model.init_params(cfg, np.random.default_rng(seed))
    if nan:
        params["out.c"][:] = np.nan
    return schema.Checkpoint(cfg, params, VOCAB)


@pytest.fixture
def engine():
    e = Engine(checkpoint(), slots=8)
    yield e
    e.close()
    assert e.join(5)


def ids(text):
    return tuple(int(i) for i in VOCAB.encode(text))


class Reader:
    """Reads streams as app.py does: one ``on_ready`` for all, which the engine calls once a
    step with every stream that has news; ``hold`` keeps the engine's thread inside it."""

    def __init__(self, hold=None):
        self.groups, self.hold = [], hold

    def on_ready(self, streams):
        self.groups.append(len(streams))
        for s in streams:
            s.tag.set()
        if self.hold is not None:
            self.hold.wait(10)

    def submit(self, engine, job):
        return engine.submit(job, self.on_ready, threading.Event())

    def texts(self, stream, n=1):
        """Each choice's text and the End events; or the Failed event."""
        texts, ends = [""] * n, []
        while len(ends) < n:
            assert stream.tag.wait(10), "no event came"
            stream.tag.clear()
            for e in stream.take():
                if isinstance(e, Failed):
                    return e
                if isinstance(e, Piece):
                    texts[e.choice] += e.text
                else:
                    ends.append(e)
        return texts, ends


def job(prime_ids, max_tokens, **fields):
    """A Job as app.py makes one, from a checked request."""
    return Job(tuple(prime_ids), Completion("m", max_tokens=max_tokens, **fields))


def test_buckets_are_powers_of_two_up_to_the_slots():
    assert [bucket(n, 16) for n in (1, 2, 3, 4, 5, 9, 16)] == [1, 2, 4, 4, 8, 16, 16]
    assert bucket(11, 12) == 12


def test_a_lone_stream_draws_what_the_library_draws(engine):
    m = LanguageModel(engine.checkpoint)
    for seed, options in [(1, {}), (2, {"temperature": 0.5, "top_k": 4}), (3, {"top_p": 0.7})]:
        r = Reader()
        texts, ends = r.texts(r.submit(engine, job(ids("ab ("), 150, seed=seed, **options)))
        assert texts == [m.generate("ab (", length=150, seed=seed, **options)[4:]]
        assert ends == [End(0, "length", 150)]


def test_streams_that_arrive_together_share_every_step_and_keep_their_seeds(engine):
    """The engine is held inside its announcement of a first, one-token stream while eight
    more come in: those start in one step, and, alike in length, end in one step, announced
    together (their readers are woken once for the eight)."""
    gate = threading.Event()
    r = Reader(hold=gate)
    holder = r.submit(engine, job(ids("c"), 1, seed=0))
    assert holder.tag.wait(10)  # the engine is inside on_ready now, held
    streams = [r.submit(engine, job(ids("cab"), 200, seed=s)) for s in range(8)]
    r.hold = None
    gate.set()
    texts = [r.texts(s)[0][0] for s in streams]
    assert r.groups[0] == 1 and r.groups[-1] == 8
    m = LanguageModel(engine.checkpoint)
    assert texts == [m.generate("cab", length=200, seed=s)[3:] for s in range(8)]  # to float32 rounding: see test_serve_api


def test_n_choices_restart_from_a_zero_state_with_one_generator(engine):
    r = Reader()
    texts, ends = r.texts(r.submit(engine, job(ids("d"), 40, n=3, seed=9, temperature=0.8)), n=3)
    m, rng = LanguageModel(engine.checkpoint), np.random.default_rng(9)
    assert texts == [m.generate("d", length=40, temperature=0.8, seed=rng)[1:] for _ in range(3)]
    assert [e.choice for e in ends] == [0, 1, 2]


def test_past_the_slots_busy_and_a_cancelled_stream_frees_its_slot(engine):
    held = [engine.submit(job((), 100_000, seed=s), lambda streams: None) for s in range(engine.slots)]
    with pytest.raises(Busy):
        engine.submit(job((), 5), lambda streams: None)
    engine.cancel(held[0])
    assert engine.wait_open(engine.slots - 1, timeout=5)
    engine.submit(job((), 5), lambda streams: None)


def test_close_ends_open_streams_with_an_error_and_takes_no_more():
    e = Engine(checkpoint(), slots=4)
    r = Reader()
    s = r.submit(e, job((), 1_000_000, seed=1))
    assert s.tag.wait(10)
    e.close()
    failed = r.texts(s)
    assert failed == Failed("the server is shutting down", "server_shutdown")
    assert e.join(5) and e.open_streams == 0
    with pytest.raises(Closed):
        r.submit(e, job((), 5))


def test_a_retired_engine_finishes_what_it_has_then_stops():
    e = Engine(checkpoint(), slots=4)
    r = Reader()
    s = r.submit(e, job(ids("a"), 300, seed=2))
    e.retire()
    with pytest.raises(Closed):
        r.submit(e, job((), 5))
    texts, ends = r.texts(s)
    assert len(texts[0]) == 300 and ends[0].reason == "length"
    assert e.join(5)


def test_a_model_whose_output_is_not_finite_fails_its_stream_with_a_reason():
    e = Engine(checkpoint(nan=True), slots=2)
    r = Reader()
    failed = r.texts(r.submit(e, job(ids("ab"), 10, seed=1)))
    assert failed.code == "model_output_not_finite" and "not finite" in failed.message
    e.close()
    assert e.join(5)


def test_stop_sequences_are_held_back_then_cut():
    t = StopText(("\n\n", "fox"))
    assert t.push("a") == ([("a", None)], False)
    assert t.push("f", 1) == ([], False)  # could begin "fox"
    assert t.push("o", 2) == ([], False)
    assert t.push("g", 3) == ([("f", 1), ("o", 2), ("g", 3)], False)  # it did not
    assert t.push("\n") == ([], False)
    assert t.push("\n") == ([], True)  # the stop: nothing of it shown
    t = StopText(("xy",))
    assert t.push("ab x") == ([], False)  # a word-level token ending in a stop's start
    assert t.push("yz") == ([("ab ", None)], True)  # cut inside the token
    t = StopText(("zz",))
    t.push("z")
    assert t.flush() == [("z", None)]


def test_draw_rows_draws_what_each_rows_sampler_draws():
    """The batched draw is Sampler.draw's arithmetic row by row: the same tokens from the same
    logits and Generators, at any temperature."""
    from charrnn.core.sampling import Sampler
    from charrnn.serve.engine import draw_rows

    class Fixed:  # a stepper that always answers the same row of logits
        def __init__(self, row):
            self.row = row[None, :]

        def step(self, ids):
            return self.row
    rng = np.random.default_rng(0)
    logits = (rng.standard_normal((12, 65)) * 4).astype(np.float32)
    temps = [1.0, 0.7, 1.3, 1e-3, 10.0, 0.05] * 2
    for trial in range(200):
        seeds = [trial * 100 + k for k in range(12)]
        together = draw_rows(logits, [np.random.default_rng(s) for s in seeds], temps)
        alone = []
        for k, s in enumerate(seeds):
            sampler = Sampler(Fixed(logits[k]), np.random.default_rng(s), temps[k])
            sampler.feed(0)
            alone.append(sampler.draw())
        assert together.tolist() == alone
