"""The report's plots: matplotlib figures (no pyplot, no global backend) rendered to SVG data URIs."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
_FIG_W = 7.5
_RC = {"svg.fonttype": "path", "svg.hashsalt": "cp-preprocess-report", "font.size": 9, "axes.spines.top": False,
       "axes.spines.right": False}


def label(text: Any, limit: int = 40) -> str:
    """A tick label from corpus text: bounded, single line, and never read as matplotlib mathtext ($...$)."""
    s = str(text).replace("\n", " ")
    s = s if len(s) <= limit else s[: limit - 1] + "…"
    return s.replace("\\", "\\\\").replace("$", r"\$")


def _figure(height: float = 3.2) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(_FIG_W, height), layout="constrained")


def to_data_uri(fig: Any) -> str:
    """The figure as an ``<img src>`` data URI: an SVG image (it cannot run script), paths for text."""
    import matplotlib

    buf = io.BytesIO()
    with matplotlib.rc_context(_RC):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _render(build: Any, *args: Any, height: float = 3.2) -> str:
    import matplotlib

    with matplotlib.rc_context(_RC):
        fig = _figure(height)
        build(fig, *args)
        return to_data_uri(fig)


def bars(title: str, categories: Sequence[str], series: dict[str, Sequence[float]], ylabel: str = "",
         horizontal: bool = False, log: bool = False, height: float = 3.2) -> str:
    """Grouped bars: one group per category, one bar per series."""

    def build(fig: Any) -> None:
        ax = fig.subplots()
        n = max(len(series), 1)
        width = 0.8 / n
        pos = list(range(len(categories)))
        for i, (name, values) in enumerate(series.items()):
            off = [p - 0.4 + width * (i + 0.5) for p in pos]
            vals = [v if v is not None else 0 for v in values]
            if horizontal:
                ax.barh(off, vals, height=width, label=label(name), color=COLORS[i % len(COLORS)])
            else:
                ax.bar(off, vals, width=width, label=label(name), color=COLORS[i % len(COLORS)])
        cats = [label(c) for c in categories]
        if horizontal:
            ax.set_yticks(pos, cats)
            ax.invert_yaxis()
            ax.set_xlabel(ylabel)
            if log:
                ax.set_xscale("log")
        else:
            ax.set_xticks(pos, cats, rotation=35 if len(categories) > 6 else 0, ha="right" if len(categories) > 6 else "center")
            ax.set_ylabel(ylabel)
            if log:
                ax.set_yscale("log")
        if len(series) > 1:
            ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
        if not log and all(isinstance(v, int) for values in series.values() for v in values if v is not None):
            from matplotlib.ticker import MaxNLocator

            (ax.xaxis if horizontal else ax.yaxis).set_major_locator(MaxNLocator(integer=True))
        if not categories:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(label(title, 100))

    return _render(build, height=height)


def bin_labels(edges: Sequence[float | None]) -> list[str]:
    """'lo–hi' labels of fixed histogram bins; a None upper edge is open (≥ lo)."""

    def fmt(x: float) -> str:
        if x >= 1 << 20 and x % (1 << 20) == 0:
            return f"{int(x) >> 20}M"
        if x >= 1024 and x % 1024 == 0:
            return f"{int(x) >> 10}k"
        return str(int(x)) if x == int(x) else f"{x:.3g}"

    out = []
    for lo, hi in pairwise(edges):
        out.append(f"≥{fmt(lo)}" if hi is None else f"{fmt(lo)}–{fmt(hi)}")
    return out


def histogram(title: str, edges: Sequence[float | None], series: dict[str, Sequence[int] | None]) -> str:
    """Fixed-bin histograms as shares of files (so a run before and after filtering compare by shape)."""
    cats = bin_labels(edges)
    shares: dict[str, list[float]] = {}
    for name, counts in series.items():
        if counts is None:
            continue
        total = sum(counts)
        shares[f"{name} ({total:,} files)"] = [100.0 * c / total if total else 0.0 for c in counts]
    return bars(title, cats, shares, ylabel="% of files")


def panels(title: str, items: Sequence[tuple[str, Sequence[str], Sequence[float | None], str]]) -> str:
    """Side-by-side bar panels, one per (title, categories, values, y label), for numbers of different scales."""

    def build(fig: Any) -> None:
        axes = fig.subplots(1, max(len(items), 1), squeeze=False)[0]
        for ax, (sub, cats, vals, ylabel) in zip(axes, items):
            ax.bar([label(c) for c in cats], [v if v is not None else 0 for v in vals],
                   color=[COLORS[i % len(COLORS)] for i in range(len(cats))])
            for i, v in enumerate(vals):
                if v is not None:
                    ax.annotate(f"{v:,.4g}", (i, v), ha="center", va="bottom", fontsize=8)
            ax.set_title(label(sub, 60))
            ax.set_ylabel(ylabel)
        fig.suptitle(label(title, 100))

    return _render(build)
