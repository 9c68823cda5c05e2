"""The benches' figures as pictures (``--plot DIR``): PNGs beside the printed tables, for
readers who would rather look than read (issue #18, item 6).

Three shapes cover the benches: a CDF (how often a window, an outage, a latency was at
most x), a per-run timeline (each move or round in order: drift and outliers show), and
a figure against N (cold start and change latency as a host grows). Each call writes one
PNG and returns its path; matplotlib is imported only when a bench is asked to plot, and
draws without a display (Agg).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

Series = Mapping[str, Sequence[float]]  # label -> values


def _pyplot() -> Any:
    import matplotlib as mpl

    mpl.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    _pyplot().close(figure)
    return path


def _cdf(axes: Any, series: Series, xlabel: str) -> None:
    for label, values in series.items():
        ordered = sorted(values)
        if not ordered:
            continue
        fractions = [(k + 1) / len(ordered) for k in range(len(ordered))]
        axes.step(ordered, fractions, where="post", label=f"{label} (n={len(ordered)})")
    axes.set_xlabel(xlabel)
    axes.set_ylabel("fraction at most x")
    axes.set_ylim(0, 1.02)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")


def _panels(count: int) -> tuple[Any, list[Any]]:
    figure, axes = _pyplot().subplots(1, count, figsize=(6 * count, 4.5))
    return figure, list(axes) if count > 1 else [axes]


def cdf(directory: Path, name: str, title: str, panels: Mapping[str, Series]) -> Path:
    """A panel per measure (its x label -> its series), one CDF per series."""
    figure, axes = _panels(len(panels))
    for panel, (xlabel, series) in zip(axes, panels.items(), strict=True):
        _cdf(panel, series, xlabel)
    figure.suptitle(title)
    return _save(figure, directory, name)


def timeline_and_cdf(directory: Path, name: str, title: str, unit: str, series: Series) -> Path:
    """Each series' values in the order measured (left) and their CDF (right)."""
    figure, (left, right) = _pyplot().subplots(1, 2, figsize=(12, 4.5))
    for label, values in series.items():
        left.plot(range(1, len(values) + 1), list(values), marker=".", label=label)
    left.set_xlabel("run, in order")
    left.set_ylabel(unit)
    left.grid(alpha=0.3)
    left.legend(fontsize="small")
    _cdf(right, series, unit)
    figure.suptitle(title)
    return _save(figure, directory, name)


def against_n(
    directory: Path,
    name: str,
    title: str,
    sizes: Sequence[int],
    panels: Mapping[str, Series],
    *,
    xlabel: str = "endpoints on the host (N)",
) -> Path:
    """A panel per measure (its y label -> its series), each series a line against N."""
    figure, axes = _panels(len(panels))
    for panel, (ylabel, series) in zip(axes, panels.items(), strict=True):
        for label, values in series.items():
            panel.plot(list(sizes), list(values), marker="o", label=label)
        panel.set_xscale("log")
        panel.set_xticks(list(sizes), [f"{n:,}" for n in sizes])
        panel.minorticks_off()
        panel.set_xlabel(xlabel)
        panel.set_ylabel(ylabel)
        panel.set_ylim(bottom=0)
        panel.grid(alpha=0.3)
        panel.legend(fontsize="small")
    figure.suptitle(title)
    return _save(figure, directory, name)


__all__ = ["against_n", "cdf", "timeline_and_cdf"]
