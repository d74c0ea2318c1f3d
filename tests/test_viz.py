"""Figures that work everywhere: no fixed widths, a slider that starts at step 0 and never plays by itself,
numbered captions, images that scale with the page, and a mime bundle that the book (HTML) and Jupyter (plotly
JSON) can both draw."""
import json
import re

import numpy as np
import pytest

from helpers import viz


def images(n, size=8, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, size, size))


@pytest.mark.parametrize("make", [
    lambda: viz.image_slider(images(5), [-2, -1, 0, 1, 2]),
    lambda: viz.line_chart([1, 2], {"y": [1, 2]}),
])
def test_figures_follow_the_page_width(make):
    layout = make().layout
    assert layout.width is None, "a fixed width overflows a phone screen"
    assert layout.height is not None and layout.height > 0


@pytest.mark.parametrize("make", [
    lambda: viz.image_grid(images(6), nrow=3, title="grid"),
    lambda: viz.montage(images(6).reshape(2, 3, 3, 8, 8), ["a", "b"], ["x", "y", "z"], title="m"),
])
def test_images_are_an_html_grid_that_scales_with_the_page(make):
    html = make()._repr_html_()
    assert "display:grid" in html and html.count("<img ") == 6
    assert not re.search(r"[^-]width:\s*\d+px", html), "a fixed width overflows a phone screen (max-width only)"
    assert "width:100%" in html and "max-width:" in html


def test_montage_labels_its_rows_and_columns_and_moves_row_labels_above_on_a_phone():
    html = viz.montage(images(6).reshape(2, 3, 3, 8, 8), ["rank 1", "rank 2"], ["-1", "0", "+1"])._repr_html_()
    assert re.findall(r'class="gg-row"[^>]*>([^<]*)<', html) == ["rank 1", "rank 2"]
    assert re.findall(r'class="gg-col"[^>]*>([^<]*)<', html) == ["-1", "0", "+1"]
    assert f"@media (max-width: {viz.GRID_NARROW}px)" in html and "grid-column: 1 / -1" in html
    grid = viz.image_grid(images(8), nrow=4)._repr_html_()
    assert "auto-fit" in grid and "gg-row" not in grid, "a grid of samples wraps onto more rows instead"


def test_montage_column_labels_keep_a_gutter_and_wrap_at_spaces_within_their_column():
    """Chapter 05's columns ("BasinCMA, z", "BasinCMA, eigenbasis") side by side: each label has padding on both
    sides, so neighbours never run together, and wraps within its own column rather than being clipped."""
    labels = ["target", "z", "BasinCMA, z", "BasinCMA, eigenbasis"]
    html = viz.montage(images(4).reshape(1, 4, 3, 8, 8), ["generated 0"], labels)._repr_html_()
    styles = re.findall(r'<div class="gg-col"[^>]*style="([^"]*)">', html)
    assert len(styles) == len(labels)
    for style in styles:
        rules = dict(rule.split(":", 1) for rule in style.split(";") if rule)
        sides = rules["padding"].split()  # CSS shorthand: top, right, bottom, left
        right, left = (sides * 4)[1] if len(sides) < 4 else sides[1], sides[3] if len(sides) == 4 else (sides * 4)[1]
        assert float(right.removesuffix("px")) >= 2 and float(left.removesuffix("px")) >= 2, style
        assert rules["overflow-wrap"] == "anywhere" and "nowrap" not in style and "overflow:hidden" not in style
    assert "minmax(0, 1fr)" in html, "columns share the width, so a label cannot push its column wider"


def test_figures_are_numbered_in_the_order_they_are_shown_with_their_title_as_caption():
    import plotly.io as pio

    viz.use_offline_html()
    first = viz.montage(images(2).reshape(1, 2, 3, 8, 8), title="walks")
    n = int(re.search(r"Figure (\d+)\. walks", first._repr_html_()).group(1))
    assert "Figure %d. walks" % n in first._repr_html_(), "shown again, a figure keeps its number"
    bundle = pio.renderers["book"].to_mimebundle(viz.line_chart([1, 2], {"y": [1, 2]}, title="a <b> line").to_dict())
    assert "<figcaption" in bundle["text/html"] and f"Figure {n + 1}. a &lt;b&gt; line" in bundle["text/html"]
    assert bundle[viz.JSON_MIME]["layout"]["title"]["text"] == f"Figure {n + 1}. a <b> line"
    assert viz.caption() == f"Figure {n + 2}."


def test_slider_rows_are_labelled():
    fig = viz.image_slider(np.stack([images(5), images(5, seed=1)]), list("abcde"), row_labels=["rank 1", "rank 4"])
    assert [a.text for a in fig.layout.annotations] == ["rank 1", "rank 4"]
    assert fig.layout.xaxis.range[0] < 0, "the labels sit left of the image, inside the axis range"


def test_heatmaps_write_each_axis_title_once_and_stack_more_than_two_panels():
    three = viz.heatmap({k: np.eye(3) for k in "abc"}, [1, 2, 3], [1, 2, 3], xlabel="eigenvector", ylabel="axis")
    titled = [ax for name, ax in three.layout.to_plotly_json().items() if name.startswith("xaxis") and
              ax.get("title", {}).get("text")]
    assert len(titled) == 1 and three.layout.xaxis3.title.text == "eigenvector", "under the bottom panel only"
    assert three.layout.yaxis.domain[0] > three.layout.yaxis3.domain[1], "stacked, top to bottom"
    two = viz.heatmap({k: np.eye(3) for k in "ab"}, [1, 2, 3], [1, 2, 3], xlabel="metric of code j")
    assert not two.layout.xaxis.title.text and not two.layout.xaxis2.title.text
    assert [a.text for a in two.layout.annotations].count("metric of code j") == 1


def test_slider_starts_at_step_zero_and_spans_the_page():
    fig = viz.image_slider(images(5), ["-2", "-1", "+0", "+1", "+2"], prefix="step ")
    slider = fig.layout.sliders[0]
    assert slider.active == 2 and slider.steps[2].label == "+0"
    assert fig.data[0].source == fig.frames[2].data[0].source, "the frame shown first is the active step"
    assert slider.len == 1 and slider.x == 0
    assert viz.image_slider(images(3), ["a", "b", "c"], start=0).layout.sliders[0].active == 0
    with pytest.raises(ValueError, match="3 labels for 5 images"):
        viz.image_slider(images(5), ["a", "b", "c"])
    with pytest.raises(ValueError, match="start 7 outside 0..4"):
        viz.image_slider(images(5), list("abcde"), start=7)


def test_figures_render_as_html_for_the_book_and_as_plotly_json_for_jupyter():
    viz.use_offline_html()
    import plotly.io as pio

    fig = viz.image_slider(images(3), ["a", "b", "c"])
    bundle = pio.renderers["book"].to_mimebundle(fig.to_dict())
    html = bundle["text/html"]
    assert "Plotly.newPlot" in html and "cdn" not in html.lower()
    assert "Plotly.animate" not in html, "the slider must not auto-play on load"
    spec = bundle[viz.JSON_MIME]
    assert json.loads(json.dumps(spec))["layout"]["sliders"][0]["active"] == 1
    assert spec["config"]["responsive"] is True


def test_gap_heatmap_is_symmetric_about_zero_and_labels_degrees():
    gap = np.array([[0.5, -3.0], [0.2, 0.1]])
    fig = viz.gap_heatmap(gap, [0.1, 1.0], np.radians([0.0, 90.0]), title="t")
    trace = fig.data[0]
    assert (trace.zmin, trace.zmax) == (-3.0, 3.0) and list(trace.x) == ["0.1", "1.0"]
    assert list(trace.y) == ["0°", "90°"]
    np.testing.assert_array_equal(np.asarray(trace.z), gap)
    assert viz.gap_heatmap(gap / 10, [0.1, 1.0], [0.0, 1.0]).data[0].zmax == 1.0  # at least ±1


def test_nested_table_has_one_row_per_leaf_with_its_keys_first():
    two = viz.nested_table({"faces": {"eyes": {"area": 0.1, "share": 0.25}, "mouth": {"area": 0.05, "share": 0.5}},
                            "eyes": {"iris": {"area": 0.16, "share": 0.3}}}, precision=2).data.splitlines()
    assert two[0] == "| model | region | area | share |"
    assert two[2:] == ["| faces | eyes | 0.10 | 0.25 |", "| faces | mouth | 0.05 | 0.50 |", "| eyes | iris | 0.16 | 0.30 |"]
    three = viz.nested_table({"m": {"eyes, code 0": {"ours": {"rank": "2 / 3"}, "theirs": {"rank": "1 / 3"}}}},
                             ("model", "region, code", "method")).data.splitlines()
    assert three[0] == "| model | region, code | method | rank |" and three[3] == "| m | eyes, code 0 | theirs | 1 / 3 |"


def test_outlined_rows_draw_each_row_s_mask():
    masks = [np.pad(np.ones((4, 4)), 2), np.ones((8, 8))]
    fig = viz.outlined_rows(np.stack([images(3), images(3)]), masks, ["inner", "all"], ["a", "b", "c"], title="t")
    html = fig._repr_html_()
    assert re.findall(r'class="gg-(?:row|col)"[^>]*>([^<]*)<', html) == ["a", "b", "c", "inner", "all"]
    drawn = viz.outline(images(3), masks[0])
    assert (drawn[:, 2, 2] == (255, 48, 48)).all() and not (drawn[:, 0, 0] == (255, 48, 48)).all()


def test_tables_and_bands_show_the_results_they_are_given():
    import torch

    from helpers import analysis, axes

    assert viz.rows_table({"a": {"x": 1.0, "y": 2}, "b": {"x": 0.5, "y": 3}}, precision=2).data.splitlines() == [
        "| model | x | y |", "|---|---|---|", "| a | 1.00 | 2 |", "| b | 0.50 | 3 |"]
    samples = np.arange(12.0).reshape(4, 3)
    x, mean, low, high = viz.band([1, 2, 3], samples)
    assert x == [1, 2, 3] and list(mean) == [4.5, 5.5, 6.5]
    np.testing.assert_allclose(low, np.percentile(samples, 5, axis=0))
    np.testing.assert_allclose(high, np.percentile(samples, 95, axis=0))
    dims = analysis.dims_for_fraction(torch.tensor([[0.9, 0.09, 0.01], [0.5, 0.4, 0.1]], dtype=torch.float64))
    table = viz.dims_table({"m": dims}, {"m": 1.96}, {"m": None}).data.splitlines()
    assert table[0] == "| model | 99% | 99.9% | 99.99% | decades, λ1 / λmin | λ20 / λ1 |"
    assert table[2] == "| m | 2.5 [2–3] | 3.0 [3–3] | 3.0 [3–3] | 2.0 | – |"
    summary = {"log": analysis.OffDiagonal(0.9312, 0.95)}
    assert viz.mean_median_table(summary, paper={"paper": ["0.952"]}).data.splitlines()[2] == (
        "| log | 0.931 | 0.950 | 0.952 |")
    V = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    al = axes.alignment(V[:, :2], V, k=2, n_random=50)
    row = viz.alignment_table({"m": {"SeFa": al}}).data.splitlines()[2].split(" | ")
    assert row[:6] == ["| m", "SeFa", "1.000", "1.000", "1.000", "1.000"]
    spectra = {"m": analysis.spectrum_summary(torch.tensor([[1.0, 0.1, 0.01]]))}
    fig = viz.spectrum_against_random(spectra, {"m": np.array([0.2, 0.3, 0.4])})
    assert [t.name for t in fig.data if t.showlegend is not False] == ["m: eigenvalues", "m: random vᵀHv"]
    assert list(fig.data[3].y) == [0.3, 0.3, 0.3] and fig.layout.yaxis.type == "log"  # the random median, flat


def test_panel_titles_wrap_and_the_scatter_grid_names_rows_and_columns_at_its_edges():
    assert viz.wrap("step × (λ_k/λ_1)^(−0.33)") == "step ×<br>(λ_k/λ_1)^(−0.33)" and viz.wrap("same step") == "same step"
    panels = viz.line_panels({"same step": ([0, 1], {"a": [0, 1]}), "step × (λ_k/λ_1)^(−0.33)": ([0, 1], {"a": [0, 2]})})
    assert [a.text for a in panels.layout.annotations] == ["same step", "step ×<br>(λ_k/λ_1)^(−0.33)"]
    x = np.random.default_rng(0).normal(size=(2, 3, 5))
    fig = viz.scatter_grid(x, x, r=np.full((2, 3), 0.5), labels=(["z0", "z1"], ["a", "b", "c"]), ylabel="y")
    texts = [a.text for a in fig.layout.annotations]
    assert texts[:3] == ["a", "b", "c"] and texts.count("r=0.50") == 6, "columns on top, r inside each panel"
    assert fig.layout.yaxis.title.text == "z0" and fig.layout.yaxis4.title.text == "z1: y"
    axes = [fig.layout[name] for name in fig.layout if name.startswith("xaxis")]
    assert len(axes) == 6 and all(a.nticks == 3 and a.tickangle == 0 for a in axes), "few upright ticks in each panel"


def test_legends_sit_above_the_plot_so_that_a_phone_keeps_the_plot_wide():
    import plotly.io as pio

    viz.use_offline_html()
    line = pio.renderers["book"].to_mimebundle(viz.line_chart([1, 2], {"a": [1, 2], "b": [2, 1]}).to_dict())
    legend = line[viz.JSON_MIME]["layout"]["legend"]
    assert legend["orientation"] == "h" and legend["y"] > 1, "above the plot, not on its right"
    panels = viz.line_panels({"p": ([0, 1], {"a": [0, 1]}), "q": ([0, 1], {"a": [1, 0]})}).to_dict()
    assert pio.renderers["book"].to_mimebundle(panels)[viz.JSON_MIME]["layout"]["legend"]["y"] > legend["y"], (
        "above the panel titles")
