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
DISTINGUISHING_FIELDS = ("tag", "tier", "host_name")

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


def _styled(plot: Callable[..., Figure]) -> Callable[..., Figure]:
    """Apply the house style while a figure's artists are made (they read rcParams then)."""

    @wraps(plot)
    def styled(df: pd.DataFrame, *args, **kwargs) -> Figure:
        with matplotlib.rc_context(_STYLE):
            return plot(df, *args, **kwargs)

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


# --- sizing and resources ----------------------------------------------------------------------


def _error_span(values: pd.Series, low: pd.Series, high: pd.Series) -> np.ndarray:
    """Matplotlib's xerr/yerr (distances below and above) for a band [low, high] around
    values; a missing end draws no whisker on that side."""
    below = (values - low).clip(lower=0).fillna(0)
    above = (high - values).clip(lower=0).fillna(0)
    return np.vstack([below.to_numpy(dtype=float), above.to_numpy(dtype=float)])


def _column_or_nan(df: pd.DataFrame, column: str) -> pd.Series:
    if column not in df.columns:
        return pd.Series(np.nan, index=df.index, dtype=float)
    return pd.to_numeric(df[column], errors="coerce")


@_styled
def sizing_chart(sizing: pd.DataFrame) -> Figure:
    """Per catalog server (one row each of `sizing`, a plan's sizing rows): the capacity one
    server sustains within the SLO, the servers the target needs and their monthly cost, as
    bars with the scale factor's band as whiskers; colour names the configuration."""
    rows = sizing[_column_or_nan(sizing, "servers").notna()] if len(sizing) else sizing
    priced = _column_or_nan(rows, "monthly_cost_eur").notna().any()
    panels = 3 if priced else 2
    height = max(2.6, 0.32 * len(rows) + 1.6)
    fig = Figure(figsize=(_WIDTH * 1.3, height), layout="constrained")
    axes = fig.subplots(1, panels, sharey=True)
    if rows.empty:
        return _empty(fig, axes[0], "No server was sized")
    rows = rows.iloc[::-1]  # the best at the top
    names = rows["server"].astype(str).to_numpy()
    y = np.arange(len(rows))
    configs = rows["configuration"].astype(str) if "configuration" in rows else pd.Series("")
    colours = _colours(configs)
    bar_colours = [colours.get(c, _PALETTE[0]) for c in configs]
    capacity = _column_or_nan(rows, "capacity_qps")
    servers = _column_or_nan(rows, "servers")
    servers_high = _column_or_nan(rows, "servers_high").fillna(servers)
    price = _column_or_nan(rows, "price_eur_month")
    bars = [
        (
            "capacity of one server (requests/s)",
            capacity,
            _column_or_nan(rows, "capacity_qps_low"),
            _column_or_nan(rows, "capacity_qps_high"),
        ),
        ("servers for the target", servers, servers, servers_high),
    ]
    if priced:
        cost = _column_or_nan(rows, "monthly_cost_eur")
        bars.append(("EUR a month", cost, cost, servers_high * price))
    for ax, (title, values, low, high) in zip(axes, bars, strict=True):
        ax.barh(
            y,
            values.fillna(0),
            xerr=_error_span(values, low, high),
            color=bar_colours,
            alpha=0.85,
            error_kw={"ecolor": "#333333", "capsize": 3, "lw": 1},
        )
        ax.set_title(title, fontsize=9.5)
        ax.grid(axis="y", visible=False)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    axes[1].xaxis.get_major_locator().set_params(integer=True)  # whole servers
    axes[0].set_yticks(y, names, fontsize=8)
    if priced and (price.isna()).any():
        axes[-1].annotate(
            "no bar: no price in the catalog",
            (1, 0),
            xycoords="axes fraction",
            ha="right",
            va="bottom",
            fontsize=7.5,
            color="#777777",
        )
    fig.suptitle("Sizing per catalog server", fontweight="bold", fontsize=11)
    handles = [Line2D([], [], color=c, lw=6, label=k) for k, c in colours.items() if k]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncol=min(3, len(handles)))
    return fig


_RESOURCES = (
    ("cpu_util_pct", "CPU of the serving processes (%)"),
    ("rss_peak_mb", "peak resident memory (MB)"),
    ("gpu_util_pct", "GPU utilisation (%)"),
    ("gpu_mem_peak_mb", "peak GPU memory (MB)"),
)


@_styled
def resource_use(df: pd.DataFrame) -> Figure:
    """CPU, memory and (where a GPU was read) GPU use per measured load point, one colour per
    configuration: what a point cost the machine to serve its throughput."""
    rows = measured(df)
    shown = [
        (c, title)
        for c, title in _RESOURCES
        if c in rows.columns and pd.to_numeric(rows[c], errors="coerce").notna().any()
    ]
    fig = Figure(figsize=(_WIDTH, 1.0 + 2.0 * max(1, len(shown))), layout="constrained")
    if not shown or rows.empty:
        return _empty(fig, fig.add_subplot(), "No resource readings to plot")
    axes = fig.subplots(len(shown), 1, sharex=True, squeeze=False)[:, 0]
    names = [
        f"{legend} · {_text(label)}" if legend else _text(label)
        for legend, label in zip(rows["legend"], rows.get("label", rows.index), strict=True)
    ]
    colours = _colours(rows["legend"])
    x = np.arange(len(rows))
    for ax, (column, title) in zip(axes, shown, strict=True):
        values = pd.to_numeric(rows[column], errors="coerce").fillna(0)
        ax.bar(x, values, color=[colours[c] for c in rows["legend"]], alpha=0.85)
        ax.set_ylabel(title, fontsize=8)
        ax.grid(axis="x", visible=False)
    axes[-1].set_xticks(x, names, rotation=30, ha="right", fontsize=7.5)
    fig.suptitle("Resource use per load point", fontweight="bold", fontsize=11)
    axes[0].set_title(common_label(rows), fontsize=8.5, fontweight="normal", color="#555555")
    return fig


# --- tiers side by side ------------------------------------------------------------------------


def _grouped_bars(
    ax: Axes,
    table: pd.DataFrame,
    group: str,
    series: str,
    value_column: str,
    low: str,
    high: str,
) -> dict[str, str]:
    """Bars of `value` per `group` (x), one bar per `series` side by side, whiskers from `low`
    to `high`; returns the colour of each series."""
    groups = list(dict.fromkeys(table[group].astype(str)))
    names = list(dict.fromkeys(table[series].astype(str)))
    colours = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}
    # Each group's bars side by side, centred on the group: a series a group lacks leaves
    # no gap.
    slots = table.groupby(table[group].astype(str), sort=False)[series].transform(
        lambda s: np.arange(len(s)) - (len(s) - 1) / 2
    )
    width = 0.8 / max(1, table.groupby(group)[series].size().max())
    drawn = set()
    for i, (_, row) in enumerate(table.iterrows()):
        name = str(row[series])
        value = pd.to_numeric(pd.Series([row[value_column]]), errors="coerce")
        ax.bar(
            groups.index(str(row[group])) + slots.iloc[i] * width,
            value.fillna(0),
            width * 0.92,
            yerr=_error_span(
                value,
                pd.to_numeric(pd.Series([row[low]]), errors="coerce"),
                pd.to_numeric(pd.Series([row[high]]), errors="coerce"),
            ),
            color=colours[name],
            alpha=0.85,
            label=None if name in drawn else name,
            error_kw={"ecolor": "#333333", "capsize": 3, "lw": 1},
        )
        drawn.add(name)
    ax.set_xticks(np.arange(len(groups)), groups, rotation=15 if len(groups) > 4 else 0)
    ax.grid(axis="x", visible=False)
    return colours


@_styled
def tier_capacity(table: pd.DataFrame) -> Figure:
    """Capacity at the SLO per tier (columns tier, source, qps, low, high): the measured bar
    and each prediction of it from another tier, whiskers spanning their bands."""
    fig, ax = _new_figure()
    if table.empty:
        return _empty(fig, ax, "No tier has a valid point")
    _grouped_bars(ax, table, "tier", "source", "qps", "low", "high")
    ax.set_ylabel("requests/s at the SLO")
    fig.suptitle("Capacity at the SLO per tier", fontweight="bold", fontsize=11)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


@_styled
def tier_cost(table: pd.DataFrame) -> Figure:
    """Cost per million requests per tier (columns tier, kind, cost_per_million, cost_low,
    cost_high, currency): dedicated and serverless side by side, with their bands."""
    fig, ax = _new_figure(height=3.8)
    if table.empty:
        return _empty(fig, ax, "No price known for any tier")
    _grouped_bars(ax, table, "tier", "kind", "cost_per_million", "cost_low", "cost_high")
    currencies = sorted(table["currency"].astype(str).unique())
    ax.set_ylabel(f"{' / '.join(currencies)} per million requests")
    fig.suptitle("Cost per million requests per tier", fontweight="bold", fontsize=11)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


@_styled
def tier_latency_cdfs(best: pd.DataFrame) -> Figure:
    """The latency distribution of one point per tier (rows with `tier`, `latency_hist`), one
    colour per tier."""
    fig, ax = _new_figure()
    drawn = 0
    for i, (_, row) in enumerate(best.iterrows()):
        curve = cdf(row.get("latency_hist"))
        if curve is None:
            continue
        label = f"{row['tier']} · {_text(row.get('label'))}"
        ax.step(*curve, where="post", color=_PALETTE[i % len(_PALETTE)], lw=1.6, label=label)
        drawn += 1
    if not drawn:
        return _empty(fig, ax, "No latency histograms to plot")
    ax.axhline(0.99, color="#999999", lw=0.8, ls=":", zorder=1)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("latency from intended send (ms)")
    ax.set_ylabel("fraction of requests at or below")
    _plain_log_ticks(ax.xaxis)
    fig.suptitle(
        "Latency distribution of each tier's best valid point", fontweight="bold", fontsize=11
    )
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


@_styled
def cross_tier(table: pd.DataFrame) -> Figure:
    """Predicted against measured capacity (columns from_tier, to_tier, predicted_qps,
    predicted_low_qps, predicted_high_qps, measured_qps, optionally measured_ceiling_qps: a
    horizontal whisker to the lowest rate that missed the SLO), with the diagonal of a perfect
    prediction and a 25% corridor around it."""
    fig, ax = _new_figure()
    if not {"measured_qps", "predicted_qps", "from_tier", "to_tier"} <= set(table.columns):
        return _empty(fig, ax, "No tier was predicted from another")
    rows = table.dropna(subset=["measured_qps", "predicted_qps"])
    if rows.empty:
        return _empty(fig, ax, "No tier was predicted from another")
    measured_qps = pd.to_numeric(rows["measured_qps"], errors="coerce")
    predicted = pd.to_numeric(rows["predicted_qps"], errors="coerce")
    low = _column_or_nan(rows, "predicted_low_qps")
    high = _column_or_nan(rows, "predicted_high_qps")
    ceiling = _column_or_nan(rows, "measured_ceiling_qps")
    top = float(np.nanmax([measured_qps.max(), high.max(), predicted.max(), ceiling.max()])) * 1.1
    line = np.array([0, top])
    ax.fill_between(line, line * 0.75, line * 1.25, color="#2ca02c", alpha=0.08, lw=0)
    ax.plot(line, line, color="#777777", lw=1, ls="--")
    pairs = (rows["from_tier"].astype(str) + " → " + rows["to_tier"].astype(str)).to_numpy()
    colours = _colours(pd.Series(pairs))
    for i, pair in enumerate(pairs):
        ax.errorbar(
            measured_qps.iloc[i],
            predicted.iloc[i],
            yerr=_error_span(predicted.iloc[[i]], low.iloc[[i]], high.iloc[[i]]),
            xerr=_error_span(measured_qps.iloc[[i]], measured_qps.iloc[[i]], ceiling.iloc[[i]]),
            fmt="o",
            color=colours[pair],
            capsize=3,
            label=pair,
        )
    ax.set_xlim(0, top)
    ax.set_ylim(0, top)
    ax.set_xlabel("measured capacity (requests/s)")
    ax.set_ylabel("predicted capacity (requests/s)")
    ax.annotate(
        "±25%", (0.02, 0.96), xycoords="axes fraction", fontsize=8, color="#2a7a2a", va="top"
    )
    fig.suptitle("Cross-tier predictions against measurements", fontweight="bold", fontsize=11)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


# Accuracy against fp32, best first in this order; cosine and top-1: higher is better.
ACCURACY_COLUMNS = ("accuracy_cosine_min", "accuracy_top1_agreement")


@_styled
def pareto_front(df: pd.DataFrame) -> Figure:
    """Accuracy against speed: each configuration's best throughput (valid rows of `df`) and
    its accuracy relative to fp32, with the Pareto front joined (no configuration both faster
    and more accurate)."""
    fig, ax = _new_figure()
    column = next((c for c in ACCURACY_COLUMNS if c in df.columns and df[c].notna().any()), None)
    if column is None or df.empty:
        return _empty(fig, ax, "No accuracy measured")
    rows = df.assign(legend=config_labels(df, differing_only=True)).dropna(
        subset=["achieved_qps", column]
    )
    best = rows.loc[rows.groupby("legend")["achieved_qps"].idxmax()].sort_values(
        "achieved_qps", ascending=False
    )
    front, most = [], -np.inf
    for _, row in best.iterrows():
        if row[column] > most:
            front.append(row)
            most = row[column]
    colours = _colours(best["legend"])
    for _, row in best.iterrows():
        ax.scatter(
            row["achieved_qps"],
            row[column],
            color=colours[row["legend"]],
            s=50,
            zorder=3,
            label=row["legend"] or "configuration",
        )
    front_rows = pd.DataFrame(front).sort_values("achieved_qps")
    ax.plot(
        front_rows["achieved_qps"],
        front_rows[column],
        color="#444444",
        lw=1,
        ls="--",
        zorder=2,
        label="Pareto front",
    )
    ax.set_xlabel("best valid throughput (requests/s)")
    ax.set_ylabel(
        {
            "accuracy_cosine_min": "lowest cosine to fp32 outputs",
            "accuracy_top1_agreement": "top-1 agreement with fp32",
        }[column]
    )
    _titles(fig, ax, "Accuracy against speed", rows)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


@_styled
def timeline(df: pd.DataFrame) -> Figure:
    """Each trace point's p50 and p99 latency over time, the rate offered behind them."""
    fig, ax = _new_figure()
    rows = measured(df)
    if "timeline_p99_ms" not in rows.columns or "scenario" not in rows.columns:
        return _empty(fig, ax, "No time series to plot")
    rows = rows[rows["scenario"].astype(str) == "trace"]
    if rows.empty:
        return _empty(fig, ax, "No trace point to plot")
    behind = ax.twinx()
    behind.set_zorder(ax.get_zorder() - 1)
    ax.patch.set_visible(False)
    colours = _colours(rows["label"].astype(str))
    for _, row in rows.iterrows():
        start = np.asarray(row["timeline_start_s"], dtype=float)
        colour = colours[str(row["label"])]
        ax.plot(start, row["timeline_p99_ms"], "-", color=colour, lw=1.6, label=row["label"])
        ax.plot(start, row["timeline_p50_ms"], "--", color=colour, lw=1.2)
        behind.step(start, row["timeline_offered_qps"], where="post", color="#bbbbbb", lw=1.2)
        behind.fill_between(
            start, row["timeline_offered_qps"], step="post", color="#dddddd", alpha=0.5
        )
    _slo_line(ax, rows)
    ax.set_xlabel("seconds into the point")
    ax.set_ylabel("latency from intended send (ms)")
    behind.set_ylabel("offered rate (requests/s, grey)", color="#777777")
    behind.grid(False)
    _titles(fig, ax, "Latency over time, the offered rate behind it", rows)
    handles = [Line2D([], [], color=c, lw=2, label=k) for k, c in colours.items()]
    _legend_below(ax, handles + _style_key()[:2])
    return fig


@_styled
def strategy_comparison(df: pd.DataFrame) -> Figure:
    """The best valid throughput per deployment strategy, per tier (`tier` column, else one
    group), for the model of `df` measured under the most strategies."""
    fig, ax = _new_figure(height=3.8)
    rows = df.dropna(subset=["achieved_qps"])
    if rows.empty:
        return _empty(fig, ax, "No valid points")
    model = rows.groupby("model")["strategy"].nunique().idxmax()
    rows = rows[rows["model"] == model]
    if "tier" not in rows.columns:
        rows = rows.assign(tier="")
    best = rows.groupby(["strategy", "tier"], as_index=False)["achieved_qps"].max()
    best = best.assign(low=np.nan, high=np.nan)
    _grouped_bars(ax, best, "strategy", "tier", "achieved_qps", "low", "high")
    ax.set_ylabel("best valid throughput (requests/s)")
    fig.suptitle(f"Deployment strategies for {model}", fontweight="bold", fontsize=11)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


# A cold start's parts, as the serverless runner stores them (seconds), in the order they run.
COLD_START_PARTS = (
    ("cold_start_process_s", "process start"),
    ("cold_start_imports_s", "imports"),
    ("cold_start_model_load_s", "model load"),
    ("cold_start_first_inference_s", "first inference"),
    ("cold_start_serving_s", "serving set-up"),
)


@_styled
def cold_start_breakdown(df: pd.DataFrame) -> Figure:
    """Where a serverless cold start's time goes, one stacked bar per tier and configuration
    (the median over their points)."""
    parts = [(c, name) for c, name in COLD_START_PARTS if c in df.columns]
    rows = df[df["strategy"] == "serverless"] if "strategy" in df.columns else df[:0]
    rows = rows.dropna(subset=[c for c, _ in parts], how="all") if parts else rows[:0]
    fig, ax = _new_figure(height=3.4)
    if rows.empty:
        return _empty(fig, ax, "No cold start measured")
    tier = rows["tier"].astype(str) if "tier" in rows.columns else pd.Series("", index=rows.index)
    names = (tier + " · " + config_labels(rows, differing_only=True)).str.strip(" ·")
    medians = rows[[c for c, _ in parts]].groupby(names.to_numpy()).median()
    y = np.arange(len(medians))
    left = np.zeros(len(medians))
    for i, (column, name) in enumerate(parts):
        values = medians[column].fillna(0).to_numpy(dtype=float)
        ax.barh(y, values, left=left, color=_PALETTE[i % len(_PALETTE)], label=name)
        left += values
    ax.set_yticks(y, [n or "serverless" for n in medians.index], fontsize=8)
    ax.set_xlabel("seconds from spawn to first answer")
    ax.grid(axis="y", visible=False)
    fig.suptitle("Cold start breakdown", fontweight="bold", fontsize=11)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


# Where a request's time goes, median request: in the server's queue, computing, and the rest
# (client, transport, serialisation), each from the columns the runner and driver store.
TIME_PARTS = (
    ("server_queue_p50_ms", "server queue"),
    ("server_compute_p50_ms", "compute"),
)


@_styled
def time_breakdown(df: pd.DataFrame) -> Figure:
    """Per measured load point, the median request's latency split into time queued in the
    server, computing, and the rest (client and transport: p50 latency less the two)."""
    rows = measured(df).dropna(subset=["latency_p50_ms"])
    parts = [(c, name) for c, name in TIME_PARTS if c in rows.columns]
    fig, ax = _new_figure(height=max(2.8, 0.35 * len(rows) + 1.4))
    if rows.empty or not parts or rows[[c for c, _ in parts]].isna().all().all():
        return _empty(fig, ax, "No server-side times stored")
    names = [
        f"{legend} · {_text(label)}" if legend else _text(label)
        for legend, label in zip(rows["legend"], rows["label"], strict=True)
    ]
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    server = np.zeros(len(rows))
    for i, (column, name) in enumerate(parts):
        values = pd.to_numeric(rows[column], errors="coerce").fillna(0).to_numpy(dtype=float)
        ax.barh(y, values, left=left, color=_PALETTE[i], label=name)
        left += values
        server += values
    rest = (rows["latency_p50_ms"].to_numpy(dtype=float) - server).clip(min=0)
    ax.barh(y, rest, left=left, color="#bbbbbb", label="client and transport")
    ax.set_yticks(y, names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("median request (ms)")
    ax.grid(axis="y", visible=False)
    _titles(fig, ax, "Where time goes", rows)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


@_styled
def break_even(curve: pd.DataFrame, currency: str = "") -> Figure:
    """Monthly cost against steady arrival rate, dedicated (a step per server added) and
    serverless (a line through zero), from `bench.capacity.serverless.break_even_curve`; the
    shading marks where serverless is cheaper."""
    fig, ax = _new_figure()
    if curve.empty:
        return _empty(fig, ax, "No rates to compare")
    rate = curve["rate_qps"].to_numpy(dtype=float)
    ax.step(rate, curve["dedicated"], where="post", color=_PALETTE[0], lw=2, label="dedicated")
    ax.plot(rate, curve["serverless"], color=_PALETTE[1], lw=2, label="serverless")
    cheaper = (curve["cheaper"] == "serverless").to_numpy()
    top = float(np.nanmax(curve[["dedicated", "serverless"]].to_numpy(dtype=float))) * 1.05
    ax.fill_between(
        rate, 0, top, where=cheaper, color=_PALETTE[1], alpha=0.08, lw=0, label="serverless cheaper"
    )
    ax.set_ylim(0, top)
    ax.set_xlabel("steady arrival rate (requests/s)")
    ax.set_ylabel(f"cost a month{f' ({currency})' if currency else ''}")
    fig.suptitle("Serverless or dedicated", fontweight="bold", fontsize=11)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


@_styled
def autoscaling(table: pd.DataFrame) -> Figure:
    """The plan's HPA simulation (`plan/autoscaling.csv`): per trace, the replicas set and
    ready over time with the offered rate behind, and the latency percentile over time."""
    traces = list(dict.fromkeys(table["trace"])) if "trace" in table.columns else []
    if not traces:
        fig, ax = _new_figure()
        return _empty(fig, ax, "No autoscaling simulation to plot")
    fig = Figure(figsize=(_WIDTH, 3.2 * len(traces)), layout="constrained")
    axes = fig.subplots(len(traces), 2, squeeze=False)
    latency = next(c for c in table.columns if c.startswith("latency_"))
    for (left, right), name in zip(axes, traces, strict=True):
        shown = table[table["trace"] == name]
        behind = left.twinx()
        for case, colour in (("hpa", _PALETTE[0]), ("fixed at peak", _PALETTE[8])):
            part = shown[shown["case"] == case]
            if part.empty:
                continue
            left.step(
                part["t_s"],
                part["replicas"],
                where="post",
                color=colour,
                lw=1.6,
                label=f"{case}: replicas set",
            )
            if case == "hpa":
                left.step(
                    part["t_s"],
                    part["ready_replicas"],
                    where="post",
                    color=colour,
                    lw=1.0,
                    ls=":",
                    label="hpa: ready",
                )
                behind.fill_between(
                    part["t_s"], part["offered_qps"], step="post", color="#dddddd", alpha=0.6
                )
            right.plot(part["t_s"], part[latency], color=colour, lw=1.2, label=case)
        behind.set_ylabel("offered requests/s", color="#777777")
        behind.grid(False)
        left.set_zorder(behind.get_zorder() + 1)
        left.patch.set_visible(False)
        left.set_title(name, fontsize=9)
        left.set_ylabel("replicas")
        left.set_xlabel("seconds")
        right.set_yscale("log")
        _plain_log_ticks(right.yaxis)
        right.set_ylabel(f"{latency.removeprefix('latency_').removesuffix('_ms')} ms")
        right.set_xlabel("seconds")
        left.legend(fontsize=7.5, loc="upper left")
        right.legend(fontsize=7.5, loc="upper left")
    fig.suptitle("Autoscaling, simulated on the measured service times", fontweight="bold")
    return fig


# --- generative models -------------------------------------------------------------------------


def _generative(df: pd.DataFrame) -> pd.DataFrame:
    rows = measured(df)
    if "ttft_p50_ms" not in rows.columns:
        return rows.iloc[0:0]
    return rows[rows["ttft_p50_ms"].notna()]


@_styled
def token_latency_cdfs(df: pd.DataFrame) -> Figure:
    """Per generative point: the distribution of TTFT and of inter-token gaps, side by side."""
    fig = Figure(figsize=(_WIDTH, _HEIGHT), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    rows = _generative(df)
    if rows.empty:
        return _empty(fig, axes[0], "No generative points to plot")
    colours = _colours(rows["legend"])
    for ax, column, xlabel in (
        (axes[0], "ttft_hist", "time to first token from intended send (ms)"),
        (axes[1], "itl_hist", "gap between streamed tokens (ms)"),
    ):
        for config, group in rows.groupby("legend", sort=True):
            shades = _shades(colours[config], len(group))
            for shade, (_, row) in zip(shades, group.iterrows(), strict=True):
                curve = cdf(row.get(column))
                if curve is None:
                    continue
                name = _text(row.get("label")) or "load point"
                ax.step(*curve, where="post", color=shade, lw=1.5,
                        label=f"{config} · {name}" if config else name)  # fmt: skip
        ax.axhline(0.99, color="#999999", lw=0.8, ls=":", zorder=1)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.01)
        ax.set_xlabel(xlabel)
        _plain_log_ticks(ax.xaxis)
    axes[0].set_ylabel("fraction at or below")
    fig.suptitle("TTFT and inter-token latency per load point", fontweight="bold", fontsize=11)
    axes[0].set_title(common_label(rows), fontsize=8.5, fontweight="normal", color="#555555")
    _legend_below(axes[0], axes[0].get_legend_handles_labels()[0])
    return fig


@_styled
def tokens_per_s_tradeoff(df: pd.DataFrame) -> Figure:
    """Per configuration, its points' total output tokens/s against one request's own pace."""
    fig, ax = _new_figure()
    rows = _generative(df)
    if rows.empty or "request_output_tokens_per_s_p50" not in rows.columns:
        return _empty(fig, ax, "No generative points to plot")
    colours = _colours(rows["legend"])
    for config, group in rows.groupby("legend", sort=True):
        group = group.sort_values("output_tokens_per_s")
        ax.plot(group["output_tokens_per_s"], group["request_output_tokens_per_s_p50"], "-o",
                color=colours[config], lw=1.5, ms=5, label=config or "points")  # fmt: skip
        if len(group) <= _MAX_ANNOTATED:
            for _, row in group.iterrows():
                ax.annotate(_text(row.get("label")), (row["output_tokens_per_s"],
                            row["request_output_tokens_per_s_p50"]), xytext=(4, 4),
                            textcoords="offset points", fontsize=7.5, color="#555555")  # fmt: skip
    ax.set_xlabel("total output tokens/s")
    ax.set_ylabel("output tokens/s of one request (median)")
    _titles(fig, ax, "Tokens/s per request against total tokens/s", rows)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig


@_styled
def goodput_vs_offered(df: pd.DataFrame) -> Figure:
    """Throughput and goodput (requests within the TTFT and TPOT SLOs) against offered rate."""
    fig, ax = _new_figure()
    rows = _generative(df)
    if "goodput_qps" in rows.columns:
        rows = rows[rows["goodput_qps"].notna()]
    if rows.empty:
        return _empty(fig, ax, "No point was judged against TTFT and TPOT SLOs")
    offered = _column_or_nan(rows, "target_qps").fillna(rows["achieved_qps"])
    rows = rows.assign(_offered=offered)
    colours = _colours(rows["legend"])
    for config, group in rows.groupby("legend", sort=True):
        group = group.sort_values("_offered")
        colour = colours[config]
        ax.plot(group["_offered"], group["achieved_qps"], "--o", color=colour, lw=1.2, ms=4,
                label=f"{config} · throughput" if config else "throughput")  # fmt: skip
        ax.plot(group["_offered"], group["goodput_qps"], "-s", color=colour, lw=1.8, ms=5,
                label=f"{config} · goodput" if config else "goodput")  # fmt: skip
    top = float(np.nanmax(rows["_offered"]))
    ax.plot([0, top], [0, top], color="#bbbbbb", lw=0.8, ls=":", zorder=1)
    ax.set_xlabel("offered rate (requests/s)")
    ax.set_ylabel("requests/s")
    _titles(fig, ax, "Goodput against offered rate", rows)
    _legend_below(ax, ax.get_legend_handles_labels()[0])
    return fig
