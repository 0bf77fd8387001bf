"""builder.interpret.figures: every view builds a serialisable plotly figure; bad shapes give ExplainError."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from builder.errors import ExplainError
from builder.interpret.activations import WeightHistogram
from builder.interpret.figures import (
    activation_figure,
    attention_heads_figure,
    attention_map_figure,
    completeness_figure,
    explanation_figure,
    global_importance_figure,
    image_attribution_figure,
    live_attribution_figure,
    sanity_figure,
    tabular_attribution_figure,
    token_attribution_figure,
    weight_histogram_figure,
)
from builder.interpret.sanity import CompletenessResult, SanityResult

rng = np.random.default_rng(0)


def _ok(fig: go.Figure) -> go.Figure:
    assert isinstance(fig, go.Figure)
    fig.to_json()  # serialisable for st.plotly_chart
    return fig


def test_image_views():
    img, attr = torch.rand(1, 8, 8), torch.randn(1, 8, 8)
    fig = _ok(image_attribution_figure(img, {"saliency": attr, "ig": attr.numpy(), "grad_cam": attr[0]}))
    # input + 3 heatmaps in row 1, 3 x (image + heatmap) overlays in row 2
    assert len(fig.data) == 1 + 3 + 6
    heat = fig.data[1]
    assert heat.zmid == 0 and heat.zmax == pytest.approx(float(attr.abs().max()))
    fig = _ok(image_attribution_figure(img, attr, mode="heatmap", show_input=False, signed=False))
    assert len(fig.data) == 1 and (np.asarray(fig.data[0].z) >= 0).all()
    rgb = _ok(image_attribution_figure(torch.rand(3, 8, 8), attr, mode="overlay"))
    assert isinstance(rgb.data[0], go.Image)
    with pytest.raises(ExplainError, match="mode"):
        image_attribution_figure(img, attr, mode="side")
    with pytest.raises(ExplainError, match="image attribution"):
        image_attribution_figure(img, torch.randn(8))


def test_tabular_views():
    a = rng.normal(size=(3, 5))
    fig = _ok(tabular_attribution_figure(a[0], list("abcde")))
    assert len(fig.data) == 1 and list(fig.data[0].y)[-1] == "abcde"[int(np.abs(a[0]).argmax())]
    assert fig.data[0].marker.color[-1] == ("#d62728" if a[0][np.abs(a[0]).argmax()] >= 0 else "#1f77b4")
    assert len(_ok(tabular_attribution_figure(a, top_k=2)).data[0].y) == 2
    fig = _ok(global_importance_figure(rng.normal(size=(20, 5)), list("abcde"), top_k=3))
    assert len(fig.data[0].x) == 3 and (np.asarray(fig.data[0].x) >= 0).all()
    assert np.all(np.diff(fig.data[0].x) >= 0)
    with pytest.raises(ExplainError, match="feature_names"):
        tabular_attribution_figure(a, ["a"])
    with pytest.raises(ExplainError, match=r"\(N, F\)"):
        global_importance_figure(a[0])


def test_token_view():
    fig = _ok(token_attribution_figure(list("abcdefg"), rng.normal(size=7), per_row=3))
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (3, 3) and np.isnan(z[2, 1:]).all()
    with pytest.raises(ExplainError, match="tokens"):
        token_attribution_figure(["a"], rng.normal(size=2))


def test_a_token_views_trailing_padding_is_one_cell():
    """Review of issue 29: a five-word review padded to 64 tokens was drawn as 5 words and 59 <pad> cells, six rows
    of them, on Explain's Attributions and Try it tabs (the sample's text already reads "… (+59 <pad>)"). The
    padding is one cell, "+59 <pad>", with its attributions summed: nothing the model drew on is hidden."""
    a = rng.normal(size=64)
    fig = _ok(token_attribution_figure(["the", "film", "was", "fine", "really", *["<pad>"] * 59], a))
    cells = [(t, z) for row_t, row_z in zip(fig.data[0].text, fig.data[0].z) for t, z in zip(row_t, row_z) if t]
    from builder.escape import plotly_text

    assert [t for t, _ in cells] == ["the", "film", "was", "fine", "really", plotly_text("+59 <pad>")]
    assert np.isclose(cells[-1][1], a[5:].sum()) and np.allclose([z for _, z in cells[:5]], a[:5])
    one = _ok(token_attribution_figure(["a", "<pad>", "b", "<pad>"], a[:4]))  # a pad between words stays, one too
    assert [t for t in np.asarray(one.data[0].text).reshape(-1) if t] == ["a", plotly_text("<pad>"), "b",
                                                                          plotly_text("<pad>")]


def test_token_map_outlines_the_explained_position_and_shows_blank_tokens():
    """Review of issue 29 (a language model on Explain): the map did not say which position's next token it
    explains, and a token of spaces or a line end was an empty cell, read as a missing token."""
    a = rng.normal(size=30)
    words = ["a", " ", "b", "\n", *[f"w{i}" for i in range(4, 30)]]
    fig = _ok(token_attribution_figure(words, a, per_row=12, mark=14))
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(r.x0, r.x1, r.y0, r.y1) for r in rects] == [(1.5, 2.5, 0.5, 1.5)]  # position 14: row 1, column 2
    assert list(fig.data[0].text[0][:4]) == ["a", "␣", "b", "⏎"]
    assert not [s for s in _ok(token_attribution_figure(words, a)).layout.shapes]  # no mark asked: none drawn
    padded = _ok(token_attribution_figure(["a", "b", "<pad>", "<pad>"], a[:4], mark=3))  # in the padding: its cell
    assert [(r.x0, r.y0) for r in padded.layout.shapes] == [(1.5, -0.5)]


def test_attention_views():
    w = torch.softmax(torch.randn(2, 4, 5, 5), -1)
    fig = _ok(attention_heads_figure(w, ["a", "b", "a", "c", "d"], sample=1))
    assert len(fig.data) == 5  # 4 heads + mean
    torch.testing.assert_close(torch.tensor(np.asarray(fig.data[4].z)), w[1].mean(0).double())
    assert list(fig.data[0].x) == ["a (0)", "b", "a (2)", "c", "d"]
    assert len(_ok(attention_heads_figure(w[0], include_mean=False)).data) == 4
    _ok(attention_map_figure(w[0, 0], list("abcde"), title="rollout"))
    with pytest.raises(ExplainError, match="sample"):
        attention_heads_figure(w, sample=2)
    with pytest.raises(ExplainError, match="labels"):
        attention_map_figure(w[0, 0], ["a"])


def test_activation_and_weight_views():
    fig = _ok(activation_figure(torch.randn(40, 4, 4), max_maps=16))
    assert len(fig.data) == 16 and "first 16 of 40" in fig.layout.title.text
    assert len(_ok(activation_figure(torch.randn(10))).data) == 1
    assert isinstance(_ok(activation_figure(torch.randn(10), kind="histogram")).data[0], go.Histogram)
    _ok(activation_figure(torch.randn(5, 6)))
    with pytest.raises(ExplainError, match="grid"):
        activation_figure(torch.randn(10), kind="grid")
    counts, edges = np.histogram(rng.normal(size=100), bins=5)
    h = WeightHistogram("fc", "weight", "Linear", counts, edges, 0.0, 1.0, 100)
    fig = _ok(weight_histogram_figure([h, h, h, h]))
    assert len(fig.data) == 4 and list(fig.data[0].y) == counts.tolist()
    with pytest.raises(ExplainError):
        weight_histogram_figure([])


def test_trust_views():
    ok = SanityResult("saliency", ["fc", "conv"], [0.2, 0.1], np.zeros((2, 3)), 0.5, False, "")
    bad = SanityResult("input_x_gradient", ["fc", "conv"], [0.9, 0.8], np.zeros((2, 3)), 0.5, True, "")
    fig = _ok(sanity_figure([ok, bad]))
    assert list(fig.data[0].x) == ["trained", "fc", "+conv"] and list(fig.data[0].y) == [1.0, 0.2, 0.1]
    assert "barely changes" in fig.data[1].name
    _ok(sanity_figure(ok))
    c = CompletenessResult(np.array([1.0, 2.0]), np.array([1.01, 1.98]), np.array([-0.01, 0.02]), None, 0.05)
    fig = _ok(completeness_figure(c))
    assert "0.02" in fig.layout.title.text and "within" in fig.layout.title.text
    # Issue 29, item 9: "0.0891 (within tolerance 0.05)": a sample passes on its relative error, and says so
    rel = CompletenessResult(np.ones(2), np.array([5.0, 4.0]), np.array([0.0891, 0.01]), None, 0.05)
    title = _ok(completeness_figure(rel)).layout.title.text
    assert rel.ok and "0.0891 is over 0.05" in title and "1.8% of |f(x) − f(baseline)|" in title
    assert "within tolerance 0.05" not in title
    bad = CompletenessResult(np.ones(2), np.array([0.5, 4.0]), np.array([0.0891, 0.01]), None, 0.05)
    assert not bad.ok and bad.verdict.startswith("Incomplete: 1 of 2 samples")


def test_live_playback():
    frames = [{"epoch": e, "attributions": rng.normal(size=(2, 1, 4, 4))} for e in (1, 2, 3)]
    fig = _ok(live_attribution_figure(frames, sample=1, image=torch.rand(1, 4, 4)))
    assert [f.name for f in fig.frames] == ["1", "2", "3"]
    assert len(fig.layout.sliders[0].steps) == 3 and len(fig.data) == 2
    tab = [{"epoch": e, "attributions": rng.normal(size=(2, 3))} for e in (1, 2)]
    assert isinstance(_ok(live_attribution_figure(tab, feature_names=list("abc"))).data[0], go.Bar)
    assert isinstance(_ok(live_attribution_figure(tab, tokens=list("xyz"))).data[0], go.Heatmap)
    with pytest.raises(ExplainError, match="no frames"):
        live_attribution_figure([])
    with pytest.raises(ExplainError, match="sample"):
        live_attribution_figure(tab, sample=5)


def test_explanation_figure_dispatches_by_modality():
    from torch import nn

    from builder.interpret.attributions import explain

    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 3))
    x = torch.rand(2, 1, 4, 4)
    fig = _ok(explanation_figure(explain(cnn, x, "saliency"), x, 1))
    assert "Saliency for class" in fig.layout.title.text and len(fig.data) == 4
    fig = _ok(explanation_figure(explain(cnn, x, "layer_conductance", layer="0"), x))
    assert "conductance of node 0" in fig.layout.title.text
    mlp = nn.Sequential(nn.Linear(3, 2))
    rows = torch.randn(2, 3)
    assert isinstance(_ok(explanation_figure(explain(mlp, rows, "saliency"), rows, modality="points2d")).data[0],
                      go.Bar)
    emb = nn.Sequential(nn.Embedding(5, 2), nn.Flatten(), nn.Linear(8, 2))
    ids = torch.randint(0, 5, (1, 4))
    fig = _ok(explanation_figure(explain(emb, ids, "layer_integrated_gradients", n_steps=4), ids,
                                 tokens=list("wxyz")))
    assert list(np.asarray(fig.data[0].text).ravel()[:4]) == list("wxyz")
    seq = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    s3 = torch.randn(1, 3, 2)
    assert np.asarray(_ok(explanation_figure(explain(seq, s3, "saliency"), s3)).data[0].z).shape == (2, 3)
    with pytest.raises(ExplainError, match="sample"):
        explanation_figure(explain(seq, s3, "saliency"), s3, 3)


def test_many_methods_wrap_so_their_titles_do_not_overlap():
    """Eight methods side by side gave 17 panels in two rows of nine: the titles ran into each other."""
    from builder.interpret.figures import MAX_GRID_COLS

    img, attr = torch.rand(1, 8, 8), torch.randn(1, 8, 8)
    names = [f"Method number {k}" for k in range(8)]
    fig = _ok(image_attribution_figure(img, dict.fromkeys(names, attr)))
    starts = sorted({round(fig.layout[k].domain[0], 3) for k in fig.layout if k.startswith("xaxis")})
    assert len(starts) <= MAX_GRID_COLS  # at most four panels per row
    assert fig.layout.height > 260 * 2  # more rows, taller figure
    titles = {a.text: a.y for a in fig.layout.annotations}
    assert set(titles) >= {f"{n}<br>heatmap" for n in names} | {f"{n}<br>overlay" for n in names}
    # the overlays start a row of their own (an overlay sat beside the last heatmaps, review of issue 29)
    assert min(y for t, y in titles.items() if t.endswith("heatmap")) > \
        max(y for t, y in titles.items() if t.endswith("overlay"))


def _axes(fig: go.Figure) -> list:
    return [fig.layout[k] for k in fig.layout if k.startswith(("xaxis", "yaxis"))]


def test_an_axis_without_labels_draws_no_tick_marks():
    """An image's axes hide their labels; Streamlit's plotly theme still drew tick marks, so every digit in Explain,
    Try it and the Data preview had stray dashes along its left and bottom edges (seen at 1440x900 and 900x900)."""
    from builder.interpret.figures import sample_figure

    img, attr = torch.rand(1, 8, 8), torch.randn(1, 8, 8)
    figs = [image_attribution_figure(img, {"saliency": attr}), sample_figure(img, "image"),
            token_attribution_figure(list("abcdefg"), rng.normal(size=7), per_row=3),
            live_attribution_figure([{"epoch": 1, "attributions": rng.normal(size=(1, 1, 8, 8))}], image=img)]
    for fig in figs:
        hidden = [a for a in _axes(fig) if a.showticklabels is False]
        assert hidden, fig.layout
        assert all(a.ticks == "" for a in hidden), [(a.plotly_name, a.ticks) for a in hidden]


def test_a_series_heatmap_names_its_rows():
    """A univariate series' attribution (and its preview) is a one-row heatmap: its y axis was ticked -0.5, 0, 0.5,
    meaningless numbers beside the row (Explain, the RNN forecaster, 900x900)."""
    from torch import nn

    from builder.interpret.attributions import explain
    from builder.interpret.figures import sample_figure

    seq = nn.Sequential(nn.Flatten(), nn.Linear(5, 1))
    x = torch.randn(1, 5, 1)  # (B, T, F): one feature
    e = explain(seq, x, "saliency")
    for fig in (explanation_figure(e, x, modality="sequence"), sample_figure(x[0], "sequence")):
        _ok(fig)
        assert list(fig.data[0].y) == ["value"] and fig.layout.yaxis.type == "category"
    fig = explanation_figure(e, x, modality="sequence", feature_names=["sunspots"])
    assert list(fig.data[0].y) == ["sunspots"]
    two = torch.randn(1, 3, 2)
    seq2 = nn.Sequential(nn.Flatten(), nn.Linear(6, 1))
    fig = explanation_figure(explain(seq2, two, "saliency"), two, modality="sequence")
    assert list(fig.data[0].y) == ["feature 1", "feature 2"]


def test_attribution_scales_are_labelled_in_plain_numbers():
    """helper-75: a sentiment LSTM's word attributions (about 1e-4) had a colour bar reading "100µ, 50µ, 0, -50µ,
    -100µ" (plotly's SI prefixes: a micro-something to a newcomer). Every attribution colour bar and signed
    attribution axis names its tick format: plain numbers, 3 significant digits."""
    from torch import nn

    from builder.interpret.attributions import explain

    small, img, s3 = rng.normal(size=6) * 1e-4, torch.rand(1, 4, 4), torch.randn(1, 3, 2)
    figures = [token_attribution_figure(list("abcdef"), small),
               image_attribution_figure(img, torch.randn(1, 4, 4) * 1e-4, mode="heatmap", show_input=False),
               image_attribution_figure(img, torch.randn(1, 4, 4) * 1e-4, mode="heatmap", show_input=False,
                                        signed=False),
               explanation_figure(explain(nn.Sequential(nn.Flatten(), nn.Linear(6, 2)), s3, "saliency"), s3),
               live_attribution_figure([{"epoch": 1, "attributions": small[None]}], tokens=list("abcdef"))]
    heatmaps = [t for f in figures for t in _ok(f).data if isinstance(t, go.Heatmap)]
    assert len(heatmaps) >= len(figures)
    assert all(t.colorbar.tickformat == ".3~g" for t in heatmaps), [t.colorbar.tickformat for t in heatmaps]
    assert _ok(tabular_attribution_figure(small, list("abcdef"))).layout.xaxis.tickformat == ".3~g"
