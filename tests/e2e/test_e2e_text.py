"""End-to-end journeys of issue 31: upload a CSV of sentences, pick the sentiment template, train, see attributions
on the words in Try it; train the GPT template on the built-in corpus and watch a sample per epoch; forecast a
built-in series with the RNN forecaster and see the forecast-vs-actual plot."""

from __future__ import annotations

import pytest
from e2e_helpers import goto_page, open_app, pick_template, shot, start_training, wait_for_value, wait_idle
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

    start_training(page, 3)
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


# the epochs whose sample the Train page lists ("epoch k: ..." captions under "What the model writes")
SAMPLE_EPOCHS_JS = """() => Array.from(document.querySelectorAll('[data-testid=stCaptionContainer]'))
    .map(el => /^epoch (\\d+):/.exec(el.innerText.trim())).filter(m => m).length"""

# the forecast-vs-actual chart of the Runs page: how many of its series (lookback, actual, forecast) have points
FORECAST_JS = """() => Array.from(document.querySelectorAll('[data-testid=stPlotlyChart] .js-plotly-plot'))
    .filter(el => el.layout && el.layout.title && /Forecast vs actual/.test(el.layout.title.text || ''))
    .map(el => new Set((el.data || []).filter(t => (t.x || []).length > 0).map(t => t.name)
                       .filter(n => ['lookback', 'actual', 'forecast'].includes(n))).size)
    .reduce((a, b) => Math.max(a, b), 0)"""


def test_the_gpt_template_trains_on_the_corpus_and_writes_a_sample_per_epoch(page):
    open_app(page)
    pick_template(page, "GPT-style language model")
    start_training(page, 2)
    wait_for_value(page, SAMPLE_EPOCHS_JS, 1, "the sample written after epoch 1", timeout=240)
    shot(page, "lm-sample-epoch1")
    wait_for_value(page, SAMPLE_EPOCHS_JS, 2, "the samples of both epochs", timeout=240)
    expect(page.locator("text=What the model writes after each epoch")).to_be_visible()
    page.wait_for_selector("text=Test results", timeout=180_000)
    assert page.locator("[data-testid=stException]").count() == 0
    page.locator("[data-testid=stCaptionContainer]", has_text="epoch 2:").first.scroll_into_view_if_needed()
    shot(page, "lm-samples")


def test_the_rnn_forecaster_forecasts_sunspots_and_shows_forecast_vs_actual(page):
    open_app(page)
    pick_template(page, "RNN forecaster")
    start_training(page, 2)
    page.wait_for_selector("text=Test results", timeout=240_000)
    wait_idle(page)
    goto_page(page, "Runs")
    expect(page.locator("[data-testid=stMain]")).to_contain_text("Run details", timeout=60_000)
    wait_for_value(page, FORECAST_JS, 3, "the forecast-vs-actual chart (lookback, actual, forecast)", timeout=90)
    page.get_by_text("Forecast vs actual").first.scroll_into_view_if_needed()
    assert page.locator("[data-testid=stException]").count() == 0
    shot(page, "forecast-vs-actual")
