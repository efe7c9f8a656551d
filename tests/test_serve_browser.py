"""The playground page in a real browser: Debian's chromium driven by Playwright for Python
(the system browser; Playwright never downloads one). Type a prime, press Generate, wait for
the streamed text; every character is coloured by its probability and hovering one shows the
alternatives; the inspect view colours a text by a unit and lists the units per feature; Stop
frees the server's slot. A screenshot is saved in the test's directory (and copied to
$CHARRNN_SCREENSHOT when that is set)."""
import colorsys
import math
import os
import shutil

import pytest

from charrnn.serve.protocol import Limits

from .serve_support import run_dir, serving  # noqa: F401  (run_dir is a fixture)

CHROMIUM = "/usr/bin/chromium"
# a closed network refuses chromium's own background connections; without these it stalls on them
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extra has it)")
expect = sync_api.expect
httpx = pytest.importorskip("httpx")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian's chromium is not installed "
                                f"({CHROMIUM}): apt-get install chromium")


@pytest.fixture(scope="module")
def srv(run_dir):  # noqa: F811
    with serving(run_dir, limits=Limits(max_tokens=10 ** 7)) as s:  # a stream long enough to stop by hand
        yield s


@pytest.fixture
def page(srv):
    """A fresh page on the playground; fails the test on a script error or a request elsewhere."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        problems = []
        page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("request", lambda r: None if r.url.startswith(srv.url) else problems.append(f"fetched {r.url}"))
        page.goto(srv.url + "/")
        page.wait_for_selector("#model option[value=notes]", state="attached")
        yield page
        browser.close()
        assert not problems


def hsl(p):
    """The rgb() string chromium computes for the page's hsl(p·120, 75%, 80%)."""
    r, g, b = colorsys.hls_to_rgb(p * 120 / 360, 0.80, 0.75)
    return round(r * 255), round(g * 255), round(b * 255)


def rgb(css):
    return tuple(int(v) for v in css.removeprefix("rgb(").removesuffix(")").split(","))


def test_generate_streams_text_coloured_by_probability_with_the_alternatives_on_hover(page, srv, tmp_path):
    page.fill("#prime", "The ")
    page.fill("#length", "160")
    page.fill("#seed", "3")
    page.click("#go")
    expect(page.locator("#status")).to_contain_text("ended: length")  # the page's CSP forbids eval: no wait_for_function
    expect(page.locator("#output .tok")).to_have_count(160)
    spans = page.eval_on_selector_all("#output .tok", "spans => spans.map(s => [s.dataset.token, Number(s.dataset.p),"
                                                     " getComputedStyle(s).backgroundColor])")
    expected = httpx.post(srv.url + "/v1/completions", json={
        "model": "notes", "prompt": "The ", "max_tokens": 160, "temperature": 0.8, "seed": 3, "logprobs": 5}).json()
    lp = expected["choices"][0]["logprobs"]
    assert "".join(t for t, _, _ in spans) == expected["choices"][0]["text"]  # what the API gives for that seed
    for (token, p, colour), logp in zip(spans, lp["token_logprobs"]):
        assert abs(p - math.exp(logp)) < 1e-4
        assert max(abs(a - b) for a, b in zip(rgb(colour), hsl(p))) <= 1, (token, p, colour)
    assert len({c for _, _, c in spans}) > 5  # the colours tell probabilities apart

    k = next(i for i, (t, _, _) in enumerate(spans) if t not in (" ", "\n"))
    page.hover(f"#output .tok >> nth={k}")
    tip = page.locator("#tip")
    tip.wait_for(state="visible")
    rows = tip.locator("tr").all_inner_texts()
    top = lp["top_logprobs"][k]
    assert len(rows) == len(top)
    for row, (token, logp) in zip(rows, top.items()):
        shown, percent = row.split("\t")[:2]
        assert shown == token.replace(" ", "␣").replace("\n", "↵") and percent == f"{100 * math.exp(logp):.1f}%"
    assert tip.locator("tr.chosen").inner_text().split("\t")[0] == spans[k][0]
    shot = tmp_path / "playground.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("CHARRNN_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["CHARRNN_SCREENSHOT"])


def test_inspect_colours_a_text_by_a_unit_and_lists_the_units_per_feature(page, srv, tmp_path):
    page.click("button.tab[data-tab=inspect]")
    page.wait_for_selector("#ranking tbody tr >> nth=3")
    features = page.locator("#ranking tbody tr td:first-child").all_inner_texts()
    assert features == ["inside quotes", "inside brackets", "position in the line", "start of a word"]
    button = page.locator("#ranking tbody tr >> nth=0").locator("button >> nth=1")  # the second unit for quotes
    layer, unit = button.inner_text().split(" ")[0].split(":")
    button.click()
    expect(page.locator("#unit-label")).to_contain_text(f"layer {layer}, unit {unit} ")
    text = page.input_value("#inspect-text")
    values = httpx.post(srv.url + "/v1/inspect", json={"model": "notes", "text": text, "layer": int(layer),
                                                        "unit": int(unit)}).json()["values"]
    shown = page.eval_on_selector_all("#inspect-output span", "spans => spans.map(s => [s.dataset.value, s.className,"
                                                              " getComputedStyle(s).backgroundColor])")
    assert [None if v == "" else float(v) for v, _, _ in shown] == values  # every character, its unit's value
    assert {c for v, c, _ in shown if v == ""} == {"unread"} and None in values  # symbols the model never saw: grey
    assert len({colour for v, _, colour in shown if v}) > 5
    current = page.locator("#ranking button.current").all_inner_texts()  # the unit, wherever it ranks
    assert button.inner_text() in current and {c.split(" ")[0] for c in current} == {f"{layer}:{unit}"}
    page.screenshot(path=str(tmp_path / "inspect.png"), full_page=True)


def test_stop_lets_the_server_free_the_slot(page, srv):
    page.fill("#length", str(10 ** 7))  # minutes of text
    page.click("#go")
    page.locator("#output .tok >> nth=20").wait_for()
    page.click("#stop")
    assert srv.engine().wait_open(0, timeout=5), "the page's stream still holds its slot"
    expect(page.locator("#go")).to_be_enabled()
    assert page.locator("#error").is_hidden() and "ended" not in page.inner_text("#status")
