"""`charrnn train`'s recipe (training/recipe.py): the network a budget buys. The rule is tested
on given speeds (nothing is timed here); the command is tested for saying its choice,
recording it, letting an option win, keeping it on resume, and --recipe fixed."""
import json

import pytest

from charrnn.checkpoint import schema
from charrnn.training import recipe

from .cli_support import SMALL, isolate, make_corpus, run

SPEED = {(2, 128): 0.06, (2, 192): 0.09, (2, 256): 0.16, (2, 384): 0.29, (2, 512): 0.46, (3, 512): 0.74,
         (3, 768): 1.7}  # seconds a step, the development machine's (benchmarks/recipe_grid.py's reference)

PARAMS = {(2, 128): 239_297, (2, 192): 506_369, (2, 256): 871_745, (2, 384): 1_897_409, (2, 512): 3_316_289,
          (3, 512): 5_415_489, (3, 768): 12_055_361}  # a 65-symbol LSTM's (core/model.count_params)


def choose(minutes=None, steps=None, chars=1_000_000, given=None, speed=SPEED.get, level="char"):
    budget = recipe.Budget(None if minutes is None else minutes * 60, steps)
    return recipe.choose(budget, chars, 32, 100, level, given or {}, lambda l, h: speed((l, h)),
                         lambda l, h: PARAMS[(l, h)])


def test_a_larger_budget_buys_a_larger_network_with_more_dropout_and_a_lower_peak():
    small, large = choose(minutes=2), choose(minutes=60)
    assert small.layers * small.hidden < large.layers * large.hidden and small.dropout < large.dropout
    assert large.lr < small.lr
    # each is the largest rung that sees the tokens a parameter its passes need, within the
    # corpus's cap; the next sees fewer or is over the cap
    for c in (small, large):
        k = recipe.LADDER.index((c.layers, c.hidden))
        assert c.steps * 3200 >= recipe.tokens_per_param(c.passes) * PARAMS[recipe.LADDER[k]]
        nxt = recipe.LADDER[k + 1]
        tokens = int(c.steps * SPEED[(c.layers, c.hidden)] / SPEED[nxt]) * 3200
        assert tokens < recipe.tokens_per_param(tokens / 1_000_000) * PARAMS[nxt] \
            or PARAMS[nxt] > recipe.PARAMS_PER_TOKEN * 1_000_000


def test_a_small_corpus_caps_the_network():
    tiny = choose(minutes=60, chars=20_000)
    assert (tiny.layers, tiny.hidden) == recipe.LADDER[0] and tiny.dropout == recipe.DROPOUT[-1][1]
    capped = choose(minutes=60, chars=300_000)
    assert PARAMS[(capped.layers, capped.hidden)] <= recipe.PARAMS_PER_TOKEN * 300_000


def test_fresh_text_needs_more_tokens_a_parameter_than_text_read_many_times():
    (fresh, many), (often, few) = recipe.TOKENS_PER_PARAM
    assert (recipe.tokens_per_param(0.01), recipe.tokens_per_param(fresh)) == (pytest.approx(many),) * 2
    assert (recipe.tokens_per_param(often), recipe.tokens_per_param(100)) == (pytest.approx(few),) * 2
    between = [recipe.tokens_per_param(p) for p in (0.3, 0.5, 1, 2, 3)]
    assert between == sorted(between, reverse=True) and few < between[-1] and between[0] < many
    # a straight line in the logarithms: one pass, the geometric middle of a quarter and four,
    # asks the geometric mean of the two ends
    assert recipe.tokens_per_param(1.0) == pytest.approx((many * few) ** 0.5)
    assert recipe.tokens_per_param(0.5) ** 2 == pytest.approx(many * recipe.tokens_per_param(1.0))
    # an hour on 90 M chars (under a pass for any rung) buys a smaller network than the same hour
    # on a 1 M corpus read many times over; no larger than ten minutes on that one
    big, small = choose(minutes=60, chars=90_000_000), choose(minutes=60, chars=1_000_000)
    assert PARAMS[(big.layers, big.hidden)] < PARAMS[(small.layers, small.hidden)] and big.passes < 1
    assert big.steps * 3200 >= recipe.tokens_per_param(big.passes) * PARAMS[(big.layers, big.hidden)]
    ten = choose(minutes=10, chars=1_000_000)
    assert PARAMS[(big.layers, big.hidden)] <= PARAMS[(ten.layers, ten.hidden)]


def test_a_slower_machine_gets_a_smaller_network():
    fast = choose(minutes=10)
    slow = choose(minutes=10, speed=lambda shape: 3 * SPEED[shape])
    assert slow.hidden * slow.layers <= fast.hidden * fast.layers
    assert slow.why.startswith("10 min on this machine ≈ ") and "passes over 1,000,000 chars → " in slow.why


def test_the_choice_is_the_same_for_the_same_corpus_budget_and_speed():
    assert choose(minutes=10) == choose(minutes=10)
    assert choose(steps=3000) == choose(steps=3000)


def test_an_option_given_wins_and_the_rest_adapt():
    c = choose(minutes=60, given={"hidden": 256, "dropout": 0.05})
    assert (c.hidden, c.dropout) == (256, 0.05) and c.layers == 2
    c = choose(minutes=60, given={"lr": 1e-3})
    assert c.lr == 1e-3 and c.hidden > 256


def test_a_long_run_on_text_read_less_than_once_takes_the_longer_window():
    fresh, long = recipe.FRESH_PASSES * 0.99, recipe.FRESH_STEPS
    assert recipe.fresh_window(fresh, long, "char", {}) == recipe.FRESH_WINDOW > recipe.WINDOW["char"]
    assert recipe.fresh_window(recipe.FRESH_PASSES, long, "char", {}) is None  # read once or more: the updates win
    assert recipe.fresh_window(fresh, long - 1, "char", {}) is None  # a shorter run: the updates win
    assert recipe.fresh_window(fresh, long, "char", {"seq_len": 64}) is None  # given: it stays
    assert recipe.fresh_window(fresh, long, "word", {}) is None  # word level keeps its default
    assert recipe.token_costs_no_more(0.10, 50, 0.20, 100) and not recipe.token_costs_no_more(0.10, 50, 0.21, 100)


@pytest.mark.parametrize("per_token_of_100, window", [(1.0, recipe.FRESH_WINDOW), (1.2, recipe.WINDOW["char"])])
def test_train_times_the_longer_window_and_takes_it_when_a_token_costs_no_more(per_token_of_100, window, tmp_path,
                                                                             monkeypatch):
    make_corpus(isolate(tmp_path, monkeypatch) / "notes.txt")
    monkeypatch.setattr(recipe, "FRESH_STEPS", 4)  # four steps count as a long run here
    from charrnn.training import probe
    seen = []

    def seconds_per_step(mcfg, tokens, batch, seq_len, *args, **kwargs):  # this machine, made up: nothing is timed
        seen.append((mcfg.hidden, seq_len))
        return 0.3 * seq_len / 50 * (per_token_of_100 if seq_len == 100 else 1.0)

    monkeypatch.setattr(probe, "seconds_per_step", seconds_per_step)
    r = run("train", "notes.txt", "--minutes", "0.02", "--steps", "4", "--hidden", "24", "--batch", "4", "--quiet")
    assert r.exit_code == 0, r.stderr
    assert seen == [(24, recipe.WINDOW["char"]), (24, recipe.FRESH_WINDOW)]  # chosen with 50, timed again with 100
    ck = schema.load("checkpoints/notes/latest.ckpt")  # four steps read a tenth of the text
    assert ck.train.seq_len == ck.choice["seq_len"] == window and ck.choice["passes"] < 1
    assert ck.choice["why"].endswith(f"→ 2x24 cifg, dropout 0, peak lr 8e-3, window {window}, β2 0.99")


def test_a_budget_in_steps_or_text_read_twice_keeps_the_window_of_more_updates(tmp_path, monkeypatch):
    make_corpus(isolate(tmp_path, monkeypatch) / "notes.txt")
    monkeypatch.setattr(recipe, "FRESH_STEPS", 4)
    for name, budget in (("steps", ["--steps", "4"]), ("twice", ["--epochs", "2"])):
        r = run("train", "notes.txt", *budget, "--hidden", "24", "--batch", "4", "--name", name, "--quiet")
        assert r.exit_code == 0, r.stderr
        ck = schema.load(f"checkpoints/{name}/latest.ckpt")
        assert ck.train.seq_len == ck.choice["seq_len"] == recipe.WINDOW["char"] and "window 50," in ck.choice["why"]
    assert ck.choice["passes"] == pytest.approx(2, abs=0.05)


def test_a_short_run_gets_adams_shorter_memory_of_squared_gradients():
    assert (choose(steps=1000).beta2, choose(steps=2000).beta2, choose(steps=2001).beta2) == (0.99, 0.99, 0.999)
    assert choose(minutes=2).beta2 == 0.99 and choose(minutes=60).beta2 == 0.999  # by the steps the budget buys
    assert choose(minutes=2, given={"beta2": 0.9}).beta2 == 0.9


def test_a_step_budget_needs_no_clock_and_a_network_it_cannot_time_is_not_chosen():
    c = choose(steps=200, speed=lambda shape: pytest.fail("a step budget timed something"))
    assert c.passes == pytest.approx(200 * 32 * 100 / 1_000_000) and (c.layers, c.hidden) == recipe.LADDER[0]
    timed = []
    c = choose(minutes=600, speed=lambda shape: timed.append(shape) or (SPEED[shape] if len(timed) < 3 else None))
    assert (c.layers, c.hidden) == timed[1]  # the third could not be timed: the second it is


def test_train_says_records_and_keeps_its_choice(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    make_corpus(tmp_path / "notes.txt")
    small = [a for a in SMALL if a != "--quiet"]
    cut = [a for i, a in enumerate(small) if a not in ("--hidden", "--layers") and small[i - 1] not in ("--hidden", "--layers")]
    r = run("train", "notes.txt", "--steps", "6", *cut)
    assert r.exit_code == 0, r.stderr
    line = next(x for x in r.stderr.splitlines() if x.startswith("recipe: "))
    ck = schema.load("checkpoints/notes/latest.ckpt")
    assert line == f"recipe: {ck.choice['why']}" and (ck.cfg.layers, ck.cfg.hidden) == (ck.choice["layers"],
                                                                                        ck.choice["hidden"])
    assert ck.train.recipe == "auto" and ck.train.lr == ck.choice["lr"]
    assert ck.train.beta2 == ck.choice["beta2"] == recipe.beta2_for(6) == 0.99  # chosen, and the optimizer's
    info = json.loads(run("info", "--json").stdout)
    assert info["choice"]["why"] == ck.choice["why"]
    assert ck.train.seq_len == ck.choice["seq_len"] == 16  # given: it stays
    r = run("train", "--resume", "--steps", "8")
    assert r.exit_code == 0 and "resuming" in r.stderr and "recipe:" not in r.stderr  # said once, when chosen
    again = schema.load("checkpoints/notes/latest.ckpt")
    assert (again.cfg, again.choice) == (ck.cfg, ck.choice)
    r = run("train", "notes.txt", "--steps", "2", "--name", "fixed", "--recipe", "fixed", *cut)
    assert r.exit_code == 0 and "recipe:" not in r.stderr
    fixed = schema.load("checkpoints/fixed/latest.ckpt")
    assert (fixed.cfg.cell, fixed.cfg.layers, fixed.cfg.hidden, fixed.cfg.dropout, fixed.train.beta2, fixed.choice) == \
        ("lstm", 2, 256, 0.1, 0.999, None)


def test_the_options_given_stay_and_the_rest_is_chosen_around_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CHARRNN_CACHE_DIR", str(tmp_path / "cache"))
    make_corpus(tmp_path / "notes.txt")
    r = run("train", "notes.txt", "--steps", "4", "--hidden", "24", "--dropout", "0.05", "--batch", "4", "--quiet")
    assert r.exit_code == 0, r.stderr
    ck = schema.load("checkpoints/notes/latest.ckpt")
    assert (ck.cfg.hidden, ck.cfg.dropout) == (24, 0.05)  # given
    assert ck.cfg.layers == ck.choice["layers"] == 2 and ck.train.lr == recipe.lr_for(24, "char")  # chosen
    assert ck.train.seq_len == ck.choice["seq_len"] == recipe.WINDOW["char"]  # chosen: not given
    assert ck.cfg.cell == ck.choice["cell"] == recipe.CELL == "cifg"  # chosen: not given
    assert ck.choice["why"].endswith("→ 2x24 cifg, dropout 0.05, peak lr 8e-3, window 50, β2 0.99")
    r = run("train", "notes.txt", "--steps", "4", "--hidden", "24", "--cell", "lstm", "--batch", "4", "--name", "mine",
            "--quiet")
    assert r.exit_code == 0, r.stderr
    mine = schema.load("checkpoints/mine/latest.ckpt")
    assert mine.cfg.cell == mine.choice["cell"] == "lstm" and "→ 2x24 lstm," in mine.choice["why"]  # given
    r = run("train", "notes.txt", "--steps", "4", "--hidden", "24", "--beta2", "0.95", "--batch", "4", "--name", "b2",
            "--quiet")
    assert r.exit_code == 0, r.stderr
    b2 = schema.load("checkpoints/b2/latest.ckpt")
    assert b2.train.beta2 == b2.choice["beta2"] == 0.95  # given
    assert "training     adam (beta2 0.95) lr " in run("info", "checkpoints/b2").stdout
