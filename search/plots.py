"""Accuracy curves as PNG files (matplotlib, Agg: no display needed).

`plot_accuracy_vs_n`: one line per method, N on a log2 axis, error bars = std over seeds
(the figure of "Let's Verify Step by Step"). `plot_accuracy_vs_tokens`: accuracy against
mean generated tokens per problem, so beam search / DVTS and best-of-N compare at equal
budget. Both take the `CurvePoint`s of `search.rerank.accuracy_curve` /
`search.evaluate.evaluate_best_of_n`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from search.rerank import CurvePoint


def _figure():
    # A Figure without pyplot renders through Agg and leaves the global backend alone.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5), dpi=120)
    return figure, figure.subplots()


def _save(figure, path: str | Path) -> Path:
    """Write the figure to `path` (parent folders made as needed) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path)
    return path


def _by_method(points: Sequence[CurvePoint], x: str) -> dict[str, list[CurvePoint]]:
    """The points of each method in order of `x`, without those whose `x` is unknown (None or NaN)."""
    lines: dict[str, list[CurvePoint]] = {}
    for point in points:
        value = getattr(point, x)
        if value is not None and math.isfinite(value):
            lines.setdefault(point.method, []).append(point)
    return {method: sorted(line, key=lambda p: getattr(p, x)) for method, line in lines.items()}


MARKERS = "osD^v<>px*h"


def _draw(axes, lines: dict[str, list[CurvePoint]], x: str) -> None:
    from matplotlib import colormaps

    # tab20 keeps up to 20 methods apart; markers tell apart what colours alone cannot.
    colours = colormaps["tab20"]
    for index, (method, line) in enumerate(lines.items()):
        style = "--" if method == "oracle" else "-"
        axes.errorbar([getattr(p, x) for p in line], [p.accuracy_mean for p in line],
                      yerr=[p.accuracy_std for p in line], label=method, linestyle=style,
                      color=colours(index % 20), marker=MARKERS[index % len(MARKERS)],
                      markersize=3, capsize=2, linewidth=1.2)
    if not any(math.isfinite(p.accuracy_mean) for line in lines.values() for p in line):
        # No point for autoscaling to place (every accuracy NaN): a log axis without limits cannot
        # place its ticks, so they come from the x values.
        xs = [getattr(p, x) for line in lines.values() for p in line if getattr(p, x) > 0]
        if xs:
            axes.set_xlim(min(xs) / 2, max(xs) * 2)
    axes.set_ylim(0.0, 1.02)
    axes.set_ylabel("accuracy")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=7, ncol=2, loc="best")


def plot_accuracy_vs_n(points: Sequence[CurvePoint], path: str | Path, *, title: str | None = None) -> Path:
    """Accuracy vs N (log2 axis, ticks at the N values) per method; returns the PNG path."""
    lines = _by_method(points, "n")
    if not lines:
        raise ValueError("no points to plot")
    figure, axes = _figure()
    _draw(axes, lines, "n")
    axes.set_xscale("log", base=2)
    ns = sorted({p.n for line in lines.values() for p in line})
    axes.set_xticks(ns, [str(n) for n in ns])
    axes.set_xlabel("N = solutions per problem (log2)")
    axes.set_title(title or "Accuracy vs N")
    return _save(figure, path)


def plot_accuracy_vs_tokens(points: Sequence[CurvePoint], path: str | Path, *, title: str | None = None) -> Path | None:
    """Accuracy vs mean generated tokens per problem (log axis); None when no point has tokens."""
    lines = _by_method(points, "tokens_mean")
    if not lines:
        return None
    figure, axes = _figure()
    _draw(axes, lines, "tokens_mean")
    axes.set_xscale("log", base=2)
    axes.set_xlabel("generated tokens per problem (log2)")
    axes.set_title(title or "Accuracy at equal generation budget")
    return _save(figure, path)
