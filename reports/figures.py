"""Figures of a results frame: each function takes a DataFrame and returns a matplotlib Figure.

Figures are built on `matplotlib.figure.Figure` directly, never pyplot: rendering needs no
display, and importing this module leaves a notebook's backend and pyplot state alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter

from bench.results.histogram import decode

CONFIG_FIELDS = ("model", "backend", "optimization", "strategy", "scenario")
# Columns that tell otherwise identical configurations apart, shown only where they differ.
DISTINGUISHING_FIELDS = ("tag", "host_name")

_PALETTE = (
    "#1f77b4",
    "#d62728",
    "#2ca02c",
    "#9467bd",
    "#ff7f0e",
    "#17becf",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
)
_STYLE = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "legend.fontsize": 8.5,
}
_WIDTH, _HEIGHT = 8.0, 4.6
_MAX_ANNOTATED = 12  # beyond this many points, per-point labels turn into clutter


def _styled(plot: Callable[[pd.DataFrame], Figure]) -> Callable[[pd.DataFrame], Figure]:
    """Apply the house style while a figure's artists are made (they read rcParams then)."""

    @wraps(plot)
    def styled(df: pd.DataFrame) -> Figure:
        with matplotlib.rc_context(_STYLE):
            return plot(df)

    return styled


def config_labels(df: pd.DataFrame, differing_only: bool = False) -> pd.Series:
    """One label per row naming its configuration: model / backend / optimization / ...

    With `differing_only`, only the fields that differ between rows: what a legend needs.
    """
    if df.empty:
        return pd.Series([], index=df.index, dtype=object)
    fields = [c for c in CONFIG_FIELDS if c in df.columns]
    if differing_only:
        fields = [c for c in fields if _differs(df[c])]
    fields += [c for c in DISTINGUISHING_FIELDS if c in df.columns and _differs(df[c])]
    fallback = "" if differing_only else "unnamed configuration"
    labels = df.apply(lambda row: _join(row, fields) or fallback, axis=1).astype(object)
    return _split_reruns(df, labels)


def common_label(df: pd.DataFrame) -> str:
    """The configuration fields every row shares, joined as in `config_labels`."""
    fields = [c for c in CONFIG_FIELDS if c in df.columns and not _differs(df[c])]
    return _join(df.iloc[0], fields) if len(df) else ""


def _join(row: pd.Series, fields: list[str]) -> str:
    parts = [_text(row[f]) for f in fields]
    return " / ".join(p for p in parts if p)


def _text(value: object) -> str:
    return "" if _missing(value) else str(value)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _differs(column: pd.Series) -> bool:
    return column.astype(str).nunique() > 1


def _split_reruns(df: pd.DataFrame, labels: pd.Series) -> pd.Series:
    """Append the run folder where one label holds the same load point from several runs.

    Runs that differ only in a setting outside CONFIG_FIELDS would otherwise be drawn as one
    zig-zagging line.
    """
    if "run_dir" not in df.columns or "label" not in df.columns:
        return labels
    keyed = pd.DataFrame({"config": labels, "point": df["label"], "run": df["run_dir"]})
    runs_per_point = keyed.groupby(["config", "point"], dropna=False)["run"].transform("nunique")
    clash = set(keyed.loc[runs_per_point > 1, "config"])
    if not clash:
        return labels
    folder = df["run_dir"].map(lambda p: Path(str(p)).name)
    return labels.where(~labels.isin(clash), (labels + " [" + folder + "]").str.strip())


def measured(df: pd.DataFrame) -> pd.DataFrame:
    """Rows that were measured (not failed), with a short `legend` label per configuration."""
    if "status" in df.columns:
        df = df[df["status"].astype(str) == "measured"]
    return df.assign(legend=config_labels(df, differing_only=True))


@_styled
def latency_vs_throughput(df: pd.DataFrame) -> Figure:
    """p50 and p99 latency against achieved throughput, one colour per configuration."""
    fig, ax = _new_figure()
    rows = measured(df)
    needed = {"achieved_qps", "latency_p99_ms"}
    if not needed <= set(rows.columns) or rows[list(needed)].dropna().empty:
        return _empty(fig, ax, "No measured throughput and latency to plot")
    colours = _colours(rows["legend"])
    annotate = len(rows) <= _MAX_ANNOTATED
    for config, group in rows.groupby("legend", sort=True):
        group = group.dropna(subset=["achieved_qps"]).sort_values("achieved_qps")
        colour = colours[config]
        for column, style in (("latency_p99_ms", "-"), ("latency_p50_ms", "--")):
            if column in group.columns:
                _curve(ax, group, column, colour, style)
        if annotate and "label" in group.columns:
            _annotate_points(ax, group)
    _slo_line(ax, rows)
    ax.set_xlabel("achieved throughput (requests/s)")
    ax.set_ylabel("latency from intended send (ms)")
    ax.set_yscale("log")
    _plain_log_ticks(ax.yaxis)
    _titles(fig, ax, "Latency against throughput", rows)
    handles = [Line2D([], [], color=c, lw=2, label=k) for k, c in colours.items() if k]
    handles += _style_key()
    _legend_below(ax, handles)
    return fig


def _curve(ax: Axes, group: pd.DataFrame, column: str, colour: str, style: str) -> None:
    points = group.dropna(subset=[column])
    ax.plot(points["achieved_qps"], points[column], style, color=colour, lw=1.6, zorder=2)
    valid = _valid_mask(points)
    ax.scatter(
        points.loc[valid, "achieved_qps"],
        points.loc[valid, column],
        color=colour,
        s=30,
        zorder=3,
    )
    ax.scatter(
        points.loc[~valid, "achieved_qps"],
        points.loc[~valid, column],
        facecolors="white",
        edgecolors=colour,
        linewidths=1.5,
        s=36,
        zorder=3,
    )


def _valid_mask(rows: pd.DataFrame) -> pd.Series:
    if "valid" not in rows.columns:
        return pd.Series(False, index=rows.index)
    return rows["valid"].eq(True)


def _annotate_points(ax: Axes, group: pd.DataFrame) -> None:
    for _, row in group.dropna(subset=["latency_p99_ms"]).iterrows():
        ax.annotate(
            _text(row["label"]),
            (row["achieved_qps"], row["latency_p99_ms"]),
            textcoords="offset points",
            xytext=(4, 5),
            fontsize=7.5,
            color="#555555",
        )


def _shared_setting(rows: pd.DataFrame, column: str) -> float | None:
    """The value of a scenario setting when every point that records it has the same one."""
    if column not in rows.columns:
        return None
    values = rows[column].dropna().unique()
    return float(values[0]) if len(values) == 1 else None


def _slo_line(ax: Axes, rows: pd.DataFrame) -> None:
    """Draw the latency SLO where every point shares one, so the reader sees what passed."""
    slo = _shared_setting(rows, "scenario.slo_ms")
    if slo is None:
        return
    percentile = "p99"
    if "scenario.slo_percentile" in rows.columns:
        percentile = _text(rows["scenario.slo_percentile"].dropna().iloc[0]) or percentile
    ax.axhline(slo, color="#b00020", lw=1, ls=":", zorder=1)
    ax.annotate(
        f"SLO {percentile} {slo:g} ms",
        (0.005, slo),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        fontsize=8,
        color="#b00020",
    )


def _style_key() -> list[Line2D]:
    grey = "#444444"
    return [
        Line2D([], [], color=grey, ls="-", label="p99"),
        Line2D([], [], color=grey, ls="--", label="p50"),
        Line2D([], [], color=grey, ls="", marker="o", label="valid"),
        Line2D(
            [],
            [],
            ls="",
            marker="o",
            markerfacecolor="white",
            markeredgecolor=grey,
            label="invalid",
        ),
    ]


@_styled
def latency_cdfs(df: pd.DataFrame) -> Figure:
    """The distribution of latency from intended send, one CDF per measured load point."""
    fig, ax = _new_figure()
    rows = measured(df)
    if "latency_hist" not in rows.columns:
        return _empty(fig, ax, "No latency histograms to plot")
    colours = _colours(rows["legend"])
    drawn = 0
    for config, group in rows.groupby("legend", sort=True):
        shades = _shades(colours[config], len(group))
        for shade, (_, row) in zip(shades, group.iterrows(), strict=True):
            curve = cdf(row["latency_hist"])
            if curve is None:
                continue
            values_ms, fractions = curve
            name = _text(row.get("label")) or "load point"
            ax.step(
                values_ms,
                fractions,
                where="post",
                color=shade,
                lw=1.5,
                label=f"{config} · {name}" if config else name,
            )
            drawn += 1
    if not drawn:
        return _empty(fig, ax, "No latency histograms to plot")
    ax.axhline(0.99, color="#999999", lw=0.8, ls=":", zorder=1)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("latency from intended send (ms)")
    ax.set_ylabel("fraction of requests at or below")
    _plain_log_ticks(ax.xaxis)
    _titles(fig, ax, "Latency distribution per load point", rows)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


def cdf(encoded: object) -> tuple[np.ndarray, np.ndarray] | None:
    """(latency ms, cumulative fraction) of an encoded histogram; None if there is none."""
    if not isinstance(encoded, str) or not encoded:
        return None
    try:
        hist = decode(encoded)
    except Exception:  # hdrh raises many types; a corrupt blob must not sink the whole report
        return None
    total = hist.get_total_count()
    if not total:
        return None
    steps = hist.get_recorded_iterator()
    pairs = [(s.value_iterated_to, s.count_added_in_this_iter_step) for s in steps]
    values_us, counts = (np.asarray(x, dtype=float) for x in zip(*pairs, strict=True))
    return values_us / 1000.0, np.cumsum(counts) / total


@_styled
def window_throughput(df: pd.DataFrame) -> Figure:
    """Each point's throughput in successive windows, relative to its own median."""
    fig, ax = _new_figure(height=3.8)
    rows = measured(df)
    if "window_qps" not in rows.columns:
        return _empty(fig, ax, "No per-window throughput to plot")
    colours = _colours(rows["legend"])
    drawn = 0
    for config, group in rows.groupby("legend", sort=True):
        for shade, (_, row) in zip(
            _shades(colours[config], len(group)), group.iterrows(), strict=True
        ):
            relative = _relative(row["window_qps"])
            if relative is None:
                continue
            name = _text(row.get("label")) or "load point"
            ax.plot(
                np.arange(1, len(relative) + 1),
                relative,
                "-o",
                color=shade,
                lw=1.4,
                ms=4,
                label=f"{config} · {name}" if config else name,
            )
            drawn += 1
    if not drawn:
        return _empty(fig, ax, "No per-window throughput to plot")
    _tolerance_band(ax, rows)
    ax.set_xlabel("window")
    ax.set_ylabel("throughput / point's median")
    ax.xaxis.get_major_locator().set_params(integer=True)
    _titles(fig, ax, "Throughput stability across windows", rows)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


@_styled
def cache_latency(df: pd.DataFrame) -> Figure:
    """Per point behind a response cache: hit and miss latency, p50 and p99, and its hit ratio."""
    rows = measured(df)
    if "cache_hit_ratio" in rows.columns:
        rows = rows[rows["cache_hit_ratio"].notna()]
    fig, ax = _new_figure(height=max(3.0, 0.55 * len(rows) + 2.0))
    if "cache_hit_ratio" not in rows.columns or rows.empty:
        return _empty(fig, ax, "No point ran behind a response cache")
    names = [
        f"{config} · {_text(row.get('label'))}" if config else _text(row.get("label"))
        for config, (_, row) in zip(rows["legend"], rows.iterrows(), strict=True)
    ]
    y = np.arange(len(rows))
    bars = ((-0.18, "hit", "hits", _PALETTE[2]), (0.18, "miss", "misses", _PALETTE[0]))
    for offset, kind, label, colour in bars:
        p99 = rows[f"cache_{kind}_latency_p99_ms"].to_numpy(dtype=float)
        p50 = rows[f"cache_{kind}_latency_p50_ms"].to_numpy(dtype=float)
        ax.barh(y + offset, p99, height=0.34, color=colour, label=label)
        ax.barh(y + offset, p50, height=0.34, color="white", alpha=0.45)
    longest = rows[["cache_hit_latency_p99_ms", "cache_miss_latency_p99_ms"]].max(axis=1)
    for i, (ratio, end) in enumerate(zip(rows["cache_hit_ratio"], longest, strict=True)):
        end = end if np.isfinite(end) else 0.0
        ax.annotate(f"{ratio:.0%} hits", (end, y[i]), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8)  # fmt: skip
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel("latency ms from the intended send: p50 (lighter part) and p99 (whole bar)")
    _titles(fig, ax, "Response cache: latency of hits and misses", rows)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


def _relative(windows: object) -> np.ndarray | None:
    if windows is None or isinstance(windows, (str, float, int)):
        return None
    values = np.asarray(list(windows), dtype=float)
    finite = values[np.isfinite(values)]
    if not len(finite) or np.median(finite) <= 0:
        return None
    return values / np.median(finite)


def _tolerance_band(ax: Axes, rows: pd.DataFrame) -> None:
    tol = _shared_setting(rows, "scenario.stability_tolerance")
    if tol is None:
        return
    # A band as wide as the allowed spread (max - min over median), centred on the median.
    ax.axhspan(1 - tol / 2, 1 + tol / 2, color="#2ca02c", alpha=0.08, zorder=0)
    ax.annotate(
        f"allowed spread {tol:.0%}",
        (0.005, 1 + tol / 2),
        xycoords=("axes fraction", "data"),
        xytext=(0, 3),
        textcoords="offset points",
        fontsize=8,
        color="#2a7a2a",
    )


def _new_figure(height: float = _HEIGHT) -> tuple[Figure, Axes]:
    fig = Figure(figsize=(_WIDTH, height), layout="constrained")
    return fig, fig.add_subplot()


def _titles(fig: Figure, ax: Axes, title: str, rows: pd.DataFrame) -> None:
    """The figure's title, and beneath it what every plotted configuration shares."""
    fig.suptitle(title, fontweight="bold", fontsize=11)
    ax.set_title(common_label(rows), fontsize=8.5, fontweight="normal", color="#555555")


def _plain_log_ticks(axis: Axis) -> None:
    # Log axes default to 4x10^1 style labels; latency readers want "40", and only at 2 and 5
    # between the decades, where every minor tick labelled would overlap.
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(FuncFormatter(_two_and_five))


def _two_and_five(value: float, _: int) -> str:
    if value <= 0:
        return ""
    mantissa = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if mantissa in (2, 5) else ""


def _empty(fig: Figure, ax: Axes, message: str) -> Figure:
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#777777", transform=ax.transAxes)
    return fig


def _colours(labels: pd.Series) -> dict[str, str]:
    names = sorted(labels.dropna().unique())
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def _shades(colour: str, n: int) -> list[tuple[float, float, float]]:
    """`n` shades of one colour, light to full: a configuration's points in load order."""
    base = np.asarray(mcolors.to_rgb(colour))
    mix = np.linspace(0.55, 0.0, n) if n > 1 else np.zeros(1)
    return [tuple(base + (1 - base) * m) for m in mix]


def _legend_below(ax: Axes, handles: list) -> None:
    if not handles:
        return
    ncol = 2 if len(handles) > 4 else len(handles)
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.16),
        ncol=ncol,
        fontsize=8.5 if len(handles) <= 12 else 7,
        frameon=False,
    )
