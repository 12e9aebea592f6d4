"""Figures for the ``html`` report: heatmap, dendrogram, task graph and trajectories.

matplotlib is an optional extra; :func:`require_matplotlib` imports it lazily and says how
to install it. Figures are drawn on the Agg canvas (no pyplot, no global backend) and
returned as PNG bytes.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from lingspace_harness import UserError
from lingspace_harness.stats import symmetrise

INSTALL_HINT = "the html report needs matplotlib, which is not installed: pip install 'lingspace-harness[report]'"


def require_matplotlib() -> None:
    """Raise a one-line :class:`UserError` if matplotlib cannot be imported."""
    try:
        import matplotlib  # noqa: F401
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    except ImportError as exc:
        raise UserError(INSTALL_HINT) from exc


def _figure(width: float, height: float) -> Any:
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


#: Two palettes, defined once and disjoint, so that no graph community is drawn in a phenomenon's
#: colour: phenomena (and other task labels) take tab20's colours; communities take Dark2's (not its
#: grey: grey marks tasks left out), then tab20b's, each at least ``COMMUNITY_DISTANCE`` (RGB
#: distance) from every label colour and from the communities' colours before it.
LABEL_COLOURMAP = "tab20"
COMMUNITY_COLOURMAPS = ("Dark2", "tab20b")
COMMUNITY_DISTANCE = 0.15


def label_colours() -> list[tuple[float, ...]]:
    """The phenomenon (label) palette: tab20's colours, RGBA."""
    require_matplotlib()
    from matplotlib import colormaps

    return [tuple(map(float, c)) for c in colormaps[LABEL_COLOURMAP](np.arange(20))]


def community_colours() -> list[tuple[float, ...]]:
    """The community palette: colours of ``COMMUNITY_COLOURMAPS`` far from every label colour."""
    require_matplotlib()
    from matplotlib import colormaps

    labels = np.array(label_colours())[:, :3]
    chosen: list[tuple[float, ...]] = []
    for name in COMMUNITY_COLOURMAPS:
        cmap = colormaps[name]
        for colour in cmap(np.arange(cmap.N)):
            rgb = np.asarray(colour[:3], dtype=float)
            if rgb.min() == rgb.max():  # a grey
                continue
            near = np.vstack([labels, np.array(chosen)[:, :3]]) if chosen else labels
            if np.sqrt(((near - rgb) ** 2).sum(axis=1)).min() >= COMMUNITY_DISTANCE:
                chosen.append((*map(float, rgb), 1.0))
    return chosen


def palette(names: Sequence[Any], colours: Sequence[Any] | None = None) -> dict[Any, Any]:
    """A distinct colour per name in first-seen order, from ``colours`` (default: the label
    palette), cycled."""
    colours = list(colours) if colours is not None else label_colours()
    unique = list(dict.fromkeys(names))
    return {name: colours[i % len(colours)] for i, name in enumerate(unique)}


def community_palette(communities: Sequence[Any]) -> dict[Any, Any]:
    """A colour per community (from the community palette, none of them a label's colour)."""
    return palette(communities, community_colours())


def short_names(tasks: Sequence[str]) -> list[str]:
    """Task names without a prefix (up to an ``_``) that all of them share, e.g. ``blimp_``."""
    if len(tasks) < 2:
        return list(tasks)
    first = tasks[0]
    cut = first.find("_") + 1
    if cut and all(t.startswith(first[:cut]) and len(t) > cut for t in tasks):
        return [t[cut:] for t in tasks]
    return list(tasks)


def _font(n: int) -> float:
    return float(max(3.5, min(9.0, 420.0 / max(n, 1))))


def heatmap(matrix: np.ndarray, tasks: list[str], phenomena: list[str], order: list[int], title: str) -> bytes:
    """The space with rows and columns in ``order``, phenomenon strips on both sides and a
    legend; the diagonal is left blank so that it does not set the colour scale, and
    undefined (NaN) off-diagonal cells are hatched."""
    from matplotlib.patches import Patch, Rectangle
    from mpl_toolkits.axes_grid1 import make_axes_locatable

    n = len(tasks)
    m = np.array(matrix, dtype=float)[np.ix_(order, order)]
    undefined = ~np.isfinite(m)
    np.fill_diagonal(undefined, False)
    np.fill_diagonal(m, np.nan)
    size = max(5.0, min(22.0, 2.5 + 0.2 * n))
    fig = _figure(size + 3.0, size)
    ax = fig.add_subplot()
    values = m[np.isfinite(m)]
    if values.size and values.min() < 0 < values.max():
        bound = float(np.abs(values).max())
        image = ax.imshow(m, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
    else:
        image = ax.imshow(m, cmap="viridis", interpolation="nearest")
    for i, j in zip(*np.nonzero(undefined)):
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.55", lw=0))
    colours = palette(phenomena)
    divider = make_axes_locatable(ax)
    names = short_names([tasks[i] for i in order])
    top = _phenomenon_strips(ax, divider, names, [phenomena[i] for i in order], colours)
    fig.colorbar(image, cax=divider.append_axes("right", size="3%", pad=0.08))
    keys = list(colours)
    handles = [Patch(color=colours[k], label=k) for k in keys]
    if undefined.any():
        handles.append(
            Patch(facecolor="white", edgecolor="0.55", hatch="///", label=f"undefined ({int(undefined.sum())} cells)")
        )
    fig.legend(
        handles=handles,
        title="phenomenon",
        loc="upper left",
        bbox_to_anchor=(0.9, 0.9),
        fontsize=8,
        title_fontsize=9,
        frameon=False,
    )
    top.set_title(title)
    return _png(fig)


def _phenomenon_strips(ax: Any, divider: Any, names: list[str], labels: list[str], colours: dict[str, Any]) -> Any:
    """Phenomenon colour strips above and left of a heatmap's axes, with the task names as ticks;
    returns the top strip's axes."""
    from matplotlib.colors import ListedColormap

    n, keys = len(names), list(colours)
    codes = np.array([[keys.index(label) for label in labels]])
    strips = {
        "cmap": ListedColormap([colours[k] for k in keys]),
        "vmin": -0.5,
        "vmax": len(keys) - 0.5,
        "aspect": "auto",
        "interpolation": "nearest",
    }
    top = divider.append_axes("top", size="3%", pad=0.03)
    top.imshow(codes, **strips)
    top.set_xlim(ax.get_xlim())
    top.set_axis_off()
    left = divider.append_axes("left", size="3%", pad=0.03)
    left.imshow(codes.T, **strips)
    left.set_ylim(ax.get_ylim())
    left.set_xticks([])
    left.set_yticks(range(n), names, fontsize=_font(n))
    left.tick_params(length=0)
    ax.set_xticks(range(n), names, rotation=90, fontsize=_font(n))
    ax.set_yticks([])
    ax.tick_params(length=0)
    return top


def dendrogram(linkage: np.ndarray, tasks: list[str], phenomena: list[str], title: str) -> bytes:
    """The clustering tree, leaves labelled with the tasks and coloured by phenomenon."""
    from scipy.cluster import hierarchy

    n = len(tasks)
    fig = _figure(8.0, max(3.0, min(22.0, 0.8 + 0.2 * n)))
    ax = fig.add_subplot()
    names = short_names(tasks)
    hierarchy.dendrogram(
        linkage,
        labels=names,
        orientation="left",
        ax=ax,
        color_threshold=0,
        above_threshold_color="0.3",
        leaf_font_size=_font(n),
    )
    colours = palette(phenomena)
    by_name = dict(zip(names, phenomena))
    for label in ax.get_yticklabels():
        label.set_color(colours[by_name[label.get_text()]])
    ax.invert_yaxis()  # the first leaf on top, as in the heatmap
    ax.set_title(title)
    ax.set_xlabel("distance")
    return _png(fig)


def task_graph(
    matrix: np.ndarray, tasks: list[str], communities: list[int | None], threshold: float, title: str
) -> bytes:
    """Tasks on a circle, community by community (each in ``tasks`` order) and coloured by
    community (grey and last: None, left out of the clustering); the pairs above ``threshold``
    as edges, wider for more similar pairs (undefined pairs have none)."""
    n = len(tasks)
    sym = symmetrise(matrix)
    order = sorted(range(n), key=lambda i: (communities[i] is None, communities[i] or 0, i))
    angle = np.empty(n)
    angle[order] = np.pi / 2 - 2 * np.pi * np.arange(n) / max(n, 1)  # clockwise from the top
    xy = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    edges = [(i, j, sym[i, j]) for i in range(n) for j in range(i + 1, n) if sym[i, j] > threshold]
    size = max(6.0, min(14.0, 4.0 + 0.12 * n))
    fig = _figure(size, size)
    ax = fig.add_subplot()
    colours: dict[Any, Any] = {**community_palette(sorted({c for c in communities if c is not None})), None: "0.8"}
    colours = {c: v for c, v in colours.items() if c is not None or None in communities}
    if edges:
        low, high = min(w for *_, w in edges), max(w for *_, w in edges)
        for i, j, w in edges:
            strength = (w - low) / (high - low) if high > low else 1.0
            ax.plot(*xy[[i, j]].T, color="0.45", alpha=0.35 + 0.5 * strength, lw=0.5 + 2.5 * strength, zorder=1)
    ax.scatter(
        *xy.T, s=max(30, 360 - 4 * n), c=[colours[c] for c in communities], edgecolors="0.2", linewidths=0.5, zorder=2
    )
    for (x, y), a, name in zip(xy, angle, short_names(tasks)):
        degrees = np.degrees(a) % 360
        left = 90 < degrees < 270
        ax.text(
            1.08 * x,
            1.08 * y,
            name,
            fontsize=_font(n) * 0.9,
            rotation=degrees - 180 if left else degrees,
            rotation_mode="anchor",
            ha="right" if left else "left",
            va="center",
        )
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=colours[c], label="left out" if c is None else f"community {c}") for c in colours],
        title=f"{title}\n{len(edges)} edges above {threshold:.3g}",
        alignment="left",
        loc="upper left",
        bbox_to_anchor=(1.25, 1.0),
        fontsize=8,
        title_fontsize=10,
        frameon=False,
    )
    ax.set_xlim(-1.1, 1.1)
    ax.set_ylim(-1.1, 1.1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    return _png(fig)


def trajectory(labels: list[str], series: dict[str, list[float | None]], title: str, ylabel: str) -> bytes:
    """One line per series over the runs in order (gaps where a value is missing)."""
    fig = _figure(max(5.0, min(16.0, 3.0 + 0.6 * len(labels))), 3.6)
    ax = fig.add_subplot()
    x = np.arange(len(labels))
    series = {name: values for name, values in series.items() if any(v is not None for v in values)}
    for name, values in series.items():
        y = np.array([np.nan if v is None else float(v) for v in values])
        ax.plot(x, y, marker="o", label=name)
    slanted = max(map(len, labels)) > 6
    ax.set_xticks(x, labels, rotation=30 if slanted else 0, ha="right" if slanted else "center")
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if not series:
        ax.text(0.5, 0.5, "no values", ha="center", va="center", transform=ax.transAxes, color="0.5")
    else:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return _png(fig)


def agreement_heatmap(names: list[str], r: np.ndarray, title: str) -> bytes:
    """Probes x probes Spearman r, each cell labelled with its value; undefined (NaN) cells off the
    diagonal (which is left blank) are hatched and labelled with a dash. ``names`` may carry each
    probe's cost."""
    from matplotlib.patches import Patch, Rectangle

    n = len(names)
    fig = _figure(max(4.5, 2.5 + 0.9 * n), max(3.5, 1.5 + 0.8 * n))
    ax = fig.add_subplot()
    image = ax.imshow(np.where(np.isfinite(r), r, np.nan), cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    for i in range(n):
        for j in range(n):
            if i == j:
                continue
            if np.isfinite(r[i, j]):
                ax.text(
                    j,
                    i,
                    f"{r[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if abs(r[i, j]) > 0.6 else "black",
                )
            else:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor="0.55", lw=0))
                ax.text(j, i, "–", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(n), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(n), names, fontsize=8)
    fig.colorbar(image, ax=ax, label="Spearman r")
    if not np.isfinite(r[~np.eye(n, dtype=bool)]).all():
        ax.legend(
            handles=[Patch(facecolor="white", edgecolor="0.55", hatch="///", label="undefined")],
            loc="upper left",
            bbox_to_anchor=(1.3, 1.0),
            fontsize=8,
            frameon=False,
        )
    ax.set_title(title)
    return _png(fig)
