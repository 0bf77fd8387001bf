"""End-to-end: upload a CSV of sentences, pick the sentiment template, train, see attributions on the words in
Try it (issue 31's first journey)."""

from __future__ import annotations

import pytest
from e2e_helpers import fill_field, goto_page, open_app, pick_template, shot, wait_for_value, wait_idle
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# the words of the typed sentence shown as a chart's axis labels (the attribution per token)
WORDS_JS = """() => Array.from(document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot'))
    .filter(el => el.offsetParent !== null)
    .map(el => (el.data || []).concat((el.layout && el.layout.xaxis && el.layout.xaxis.ticktext) ? [{x: el.layout.xaxis.ticktext}] : [])
        .some(t => [].concat(t.x || [], t.y || [], t.text || []).some(v => String(v).includes('great'))) ? 1 : 0)
    .reduce((a, b) => a + b, 0)"""


def _sentences(tmp_path) -> str:
    good, bad = ["good", "great", "wonderful", "superb"], ["bad", "awful", "dull", "poor"]
    rows = [f"the film was {(good if i % 2 else bad)[i % 4]} and the plot {['moved', 'dragged'][i % 2]},"
            f"{'pos' if i % 2 else 'neg'}" for i in range(160)]
    p = tmp_path / "reviews.csv"
    p.write_text("sentence,label\n" + "\n".join(rows) + "\n")
    return str(p)


def test_upload_sentences_train_the_sentiment_lstm_and_see_attributions_on_words(page, tmp_path):
    open_app(page)
    pick_template(page, "Sentiment LSTM")
    goto_page(page, "Data")
    page.locator("[data-testid=stButtonGroup] button", has_text="Text").first.click()
    wait_idle(page)
    page.locator(".st-key-ll_txt_up input[type=file]").set_input_files(_sentences(tmp_path))
    page.wait_for_selector("text=Tokenised samples", timeout=60_000)
    wait_idle(page)
    fix = page.locator("button", has_text="Fix the graph for this dataset")
    if fix.count():  # the template's Input is for the built-in set: shape and vocabulary follow the upload
        fix.first.click()
        page.wait_for_selector("text=fit this dataset", timeout=30_000)
    shot(page, "text-data")

    goto_page(page, "Train")
    fill_field(page, "Epochs", 3)
    page.locator("button", has_text="Start training").first.click()
    page.wait_for_selector("text=Test results", timeout=180_000)
    wait_idle(page)

    page.locator("[data-testid=stSidebarNav] a", has_text="Explain").first.click()
    # the page's sandboxed probe starts and explains the first sample before the tabs settle (slow under load)
    page.get_by_role("tab", name="Try it").wait_for(timeout=180_000)
    wait_idle(page, timeout=180)
    page.get_by_role("tab", name="Try it").click()
    wait_idle(page, timeout=120)
    box = page.get_by_label("Your sentence", exact=True)
    box.fill("the film was great")  # a word of the training sentences
    box.press("Enter")
    wait_idle(page, timeout=120)
    expect(page.locator("text=Your input's prediction")).to_be_visible(timeout=60_000)
    wait_for_value(page, WORDS_JS, 1, "an attribution chart labelled with the typed words", timeout=90)
    assert page.locator("[data-testid=stException]").count() == 0
    shot(page, "text-tryit")
