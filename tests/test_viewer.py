"""attention.html: self-contained, written by every task run, and right in a real browser.

The browser tests drive Debian's chromium (``/usr/bin/chromium``) through Playwright with
that executable, so nothing downloads a browser; without it they skip, naming the package.
"""

import json
import shutil

import pytest

from transformer.experiments import cli, viewer

CHROMIUM = shutil.which("chromium")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - playwright is a dev dependency
    sync_playwright = None

needs_browser = pytest.mark.skipif(
    CHROMIUM is None or sync_playwright is None,
    reason="the viewer's browser test needs Debian's chromium: apt-get install chromium",
)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A quick pattern run of v5 (two layers of four heads): its results and its page."""
    out = tmp_path_factory.mktemp("pattern")
    assert (
        cli.main("pattern", ["--quick", "--version", "v5", "--steps", "3", "--out", str(out)]) == 0
    )
    return out / "v5" / "seed0"


def test_every_task_run_writes_its_page_beside_its_figures(run_folder):
    results = json.loads((run_folder / "results.json").read_text())
    assert viewer.PAGE in results["files"]
    page = (run_folder / viewer.PAGE).read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert oct((run_folder / viewer.PAGE).stat().st_mode & 0o777) == oct(
        (run_folder / "results.json").stat().st_mode & 0o777
    )


def test_the_page_is_self_contained():
    page = viewer.page_html("t", [0, 1], [[[[1.0, 0.0], [0.5, 0.5]]]])
    for outside in ("http:", "https:", "//cdn", "<link", " src=", "@import", "url("):
        assert outside not in page, outside


def test_tokens_cannot_end_the_inline_data_early():
    page = viewer.page_html("</title>", ["</script><b>", "x"], [[[[1.0, 0.0], [0.5, 0.5]]]])
    assert page.count("</script>") == 2  # the data's and the code's own
    inline = page.split('id="data">')[1].split("</script>")[0]
    assert json.loads(inline)["tokens"] == ["</script><b>", "x"]
    assert "<title>&lt;/title&gt;</title>" in page


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


def open_page(browser, path):
    """The page from file://, with every request it makes and every script error recorded."""
    page = browser.new_page()
    page.set_default_timeout(5000)
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(path.as_uri())
    return page, requests, errors


def shown_weights(page, selector):
    return [
        float(w)
        for w in page.eval_on_selector_all(selector, "els => els.map(e => e.dataset.weight)")
    ]


@needs_browser
@pytest.mark.parametrize(("layer", "head", "query"), [(1, 2, 9), (0, 3, 15), (1, 0, 4)])
def test_the_page_shows_the_weights_in_results_json(run_folder, browser, layer, head, query):
    results = json.loads((run_folder / "results.json").read_text())
    attention = results["trained"]["example"]["attention"]  # L x H x T x T
    page, requests, errors = open_page(browser, run_folder / viewer.PAGE)
    page.select_option("#layer", str(layer))
    page.select_option("#head", str(head))
    page.hover(f"#queries span[data-index='{query}']")
    expected = attention[layer][head][query]  # the weights query puts on each key
    assert shown_weights(page, "#readout li") == expected
    readout = page.eval_on_selector_all("#readout li", "els => els.map(e => e.textContent)")
    assert [float(text.split()[-1]) for text in readout] == expected
    cells = page.eval_on_selector_all(
        "#heatmap tr[data-query]",
        "rows => rows.map(r => [...r.querySelectorAll('td')].map(c => c.dataset.weight))",
    )
    assert [[float(w) for w in row] for row in cells] == attention[layer][head]
    assert page.inner_text("#chosen").startswith(f"layer {layer}, head {head}, query {query}")
    page.hover(f"#heatmap tr[data-query='{query - 1}'] th")  # a heatmap row is a query too
    assert shown_weights(page, "#readout li") == attention[layer][head][query - 1]
    assert requests == [(run_folder / viewer.PAGE).as_uri()]
    assert errors == []
    page.close()


@needs_browser
def test_the_scores_table_shows_the_scores_and_selects_a_head(run_folder, browser):
    heads = json.loads((run_folder / "results.json").read_text())["trained"]["heads"]
    page, requests, errors = open_page(browser, run_folder / viewer.PAGE)
    header = page.eval_on_selector_all("#scores thead th", "els => els.map(e => e.textContent)")
    assert header == ["layer", "head", "previous_token", "three_back", "duplicate_token",
                      "induction (this task)"]  # fmt: skip
    rows = page.eval_on_selector_all(
        "#scores tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )
    names = header[2:-1] + ["induction"]
    expected = [
        [str(layer), str(head), *(f"{heads['scores'][n][layer][head]:.3f}" for n in names)]
        for layer in range(2) for head in range(4)
    ]  # fmt: skip
    assert rows == expected
    page.click("#scores tbody tr[data-layer='1'][data-head='3']")
    assert page.input_value("#layer") == "1" and page.input_value("#head") == "3"
    assert page.eval_on_selector_all("#scores tr.chosen", "els => els.length") == 1
    assert requests == [(run_folder / viewer.PAGE).as_uri()] and errors == []
    page.close()


@needs_browser
def test_a_cross_attention_page_has_its_own_keys_and_no_scores(tmp_path, browser):
    """Queries and keys differ (a decoder over a source): 3 queries, 5 keys, 2 heads."""
    torch = pytest.importorskip("torch")
    weights = torch.rand(1, 2, 3, 5, generator=torch.Generator().manual_seed(0)).softmax(-1)
    attention = [[[[round(float(w), 6) for w in row] for row in head] for head in weights[0]]]
    path = tmp_path / "attention_copy.html"
    viewer.write_page(path, "cross", list("^ab"), attention, key_tokens=list("abcde"))
    page, requests, errors = open_page(browser, path)
    assert page.eval_on_selector_all("#keys span", "els => els.length") == 5
    assert page.eval_on_selector_all("#scores, #scores-title", "els => els.length") == 0
    page.select_option("#head", "1")
    page.hover("#queries span[data-index='2']")
    assert shown_weights(page, "#readout li") == attention[0][1][2]
    assert requests == [path.as_uri()] and errors == []
    page.close()
