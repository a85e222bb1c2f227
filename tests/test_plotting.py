"""Figure helpers: readable heatmaps (colour bar, values in a contrasting colour, no grid) and sample captions."""

import matplotlib
import numpy as np
import pandas as pd

from passkt import metrics, plotting


def test_text_colour_follows_the_cell_luminance():
    assert plotting.text_color(matplotlib.colormaps["viridis"](0.0)) == "white"  # dark purple
    assert plotting.text_color(matplotlib.colormaps["viridis"](1.0)) == "black"  # yellow
    assert plotting.text_color(matplotlib.colormaps["Greens"](1.0)) == "white"  # dark green
    assert plotting.text_color(matplotlib.colormaps["Greens"](0.0)) == "black"


def test_heatmap_has_a_colour_bar_its_values_and_no_grid():
    plotting.set_style()  # whitegrid: axes.grid on
    fig, ax = matplotlib.pyplot.subplots()
    table = pd.DataFrame([[0.1, np.nan], [0.9, 0.5]], index=[5, 0], columns=[1, 2])
    plotting.heatmap(ax, table, cmap="Greens", vmin=0, vmax=1, label="Pass", marks=[["•", ""], ["", ""]])
    assert len(fig.axes) == 2  # the heatmap and its colour bar
    assert not any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())
    texts = {t.get_text(): t.get_color() for t in ax.texts}
    assert texts == {"0.10•": "black", "0.90": "white", "0.50": "black"}  # NaN cells stay empty


def test_sample_caption_states_n_problems_and_seed():
    text = plotting.sample_caption(16, {"bridge": 50, "comparison": 50}, 0)
    assert text == "n = 16 rollouts per problem · problems: 50 bridge, 50 comparison · seed 0 (one training run per policy)"
    assert plotting.sample_caption(problems=9, seed=1) == "9 problems · seed 1"


def test_boundary_table_from_flat_keys():
    keys = ("gained", "lost", "both", "neither", "net", "net_ci_low", "net_ci_high", "mcnemar_p")
    stats = {f"setdiff.bridge.rl_vs_base.{k}": float(i) for i, k in enumerate(keys)}
    table = metrics.boundary_table(stats, [("rl", "base"), ("sft", "base")])
    assert table.columns.tolist() == ["category", "pair", *keys]
    assert table.to_dict("records") == [{"category": "bridge", "pair": "rl vs base", **{k: float(i) for i, k in enumerate(keys)}}]
    assert metrics.boundary_table({}, [("rl", "base")]).columns.tolist() == ["category", "pair", *keys]
