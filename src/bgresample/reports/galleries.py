"""Image galleries: the pool items with the highest and lowest learned weights, and per variant
the OOD test images it misses most (highest score, i.e. most confidently taken for ID).

Each block of a gallery is one tiled image with captions above the tiles (one axes, not one per
image) placed at fixed positions, which keeps drawing fast and the pixel size predictable.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib as mpl
import numpy as np
import torch
from matplotlib.axes import Axes

from bgresample.data.pools import ImageSource
from bgresample.reports.figures import STYLE, new_figure, save_figure, score_names

COLUMNS = 10
WEIGHT_ROWS = 3
#: Tile size, gap between tiles and room for a two-line caption above each, in image pixels.
TILE, GAP, CAPTION = 32, 4, 13
#: Figure width, side margin, main title and block title heights, in inches.
WIDTH, MARGIN, HEADER, BLOCK_TITLE = 14.0, 0.1, 0.5, 0.35
ROW_INCHES = (WIDTH - 2 * MARGIN) * (TILE + CAPTION + GAP) / (COLUMNS * (TILE + GAP))

#: A gallery block: its title, images (N x H x W x 3), one caption per image, rows of tiles.
Block = tuple[str, np.ndarray, list[str], int]


def gallery_inches(rows: list[int]) -> tuple[float, float]:
    """Figure size of a gallery whose blocks have ``rows`` rows of tiles each."""
    return WIDTH, HEADER + sum(BLOCK_TITLE + r * ROW_INCHES for r in rows)


def to_rgb(images: ImageSource, indices: np.ndarray) -> np.ndarray:
    """N x H x W x 3 floats in [0, 1]; normalised-space sets are mapped back with x*0.25+0.5."""
    idx = torch.from_numpy(np.ascontiguousarray(indices, dtype=np.int64))
    x = images.get_batch(idx).float().cpu()
    x = x * 0.25 + 0.5 if images.normalized else x / 255.0
    return x.clamp(0, 1).permute(0, 2, 3, 1).numpy()


def _tiles(ax: Axes, pictures: np.ndarray, captions: list[str], rows: int) -> None:
    """Tile ``pictures`` (framed in grey) in a ``rows`` x COLUMNS grid, captions above."""
    cell_h, cell_w = TILE + CAPTION + GAP, TILE + GAP
    canvas = np.ones((rows * cell_h, COLUMNS * cell_w, 3))
    for k, (pic, cap) in enumerate(zip(pictures, captions, strict=True)):
        r, c = divmod(k, COLUMNS)
        top, left = r * cell_h + CAPTION, c * cell_w + GAP // 2
        canvas[top - 1 : top + TILE + 1, left - 1 : left + TILE + 1] = 0.6  # grey frame
        canvas[top : top + TILE, left : left + TILE] = pic
        ax.text(left + TILE / 2, top - 1.5, cap, ha="center", va="bottom", fontsize=9.5)
    ax.imshow(canvas, interpolation="nearest")
    ax.set_axis_off()


def _gallery(title: str, blocks: list[Block], path: Path) -> Path:
    width, height = gallery_inches([b[3] for b in blocks])
    fig = new_figure((width, height), layout=None)
    with mpl.rc_context(STYLE):
        fig.text(0.5, 1 - 0.1 / height, title, ha="center", va="top", fontsize=15, weight="bold")
        y = height - HEADER
        for name, pictures, captions, rows in blocks:
            fig.text(0.5, (y - 0.05) / height, name, ha="center", va="top", fontsize=12.5)
            y -= BLOCK_TITLE + rows * ROW_INCHES
            box = (MARGIN / width, y / height, 1 - 2 * MARGIN / width, rows * ROW_INCHES / height)
            _tiles(fig.add_axes(box), pictures, captions, rows)
    return save_figure(fig, path.with_suffix(""), svg=False)


def weight_gallery(
    pool: ImageSource, weights: np.ndarray, seed: int, title: str, path: Path
) -> Path:
    """Top- and bottom-weighted pool images, each with its weight and family (or index)."""
    n = COLUMNS * WEIGHT_ROWS
    order = np.argsort(-weights, kind="stable")
    blocks: list[Block] = []
    for idx, what in (
        (order[:n], f"{n} highest weights (drawn most by the adversarial sampler)"),
        (order[::-1][:n], f"{n} lowest weights (drawn least)"),
    ):
        what += _ties(weights, idx)
        caps = [f"w={weights[i]:.3g}\n" + (pool.family[i] if pool.family else f"#{i}") for i in idx]
        blocks.append((f"{what}, seed {seed}", to_rgb(pool, idx), caps, WEIGHT_ROWS))
    return _gallery(title, blocks, path)


def _ties(weights: np.ndarray, shown: np.ndarray) -> str:
    """A note when the weight at the block's edge is shared by items not shown (e.g. hundreds
    of never-drawn items tied at the lowest weight)."""
    edge = weights[shown[-1]]
    tied = int(np.sum(weights == edge))
    in_block = int(np.sum(weights[shown] == edge))
    if tied <= in_block:
        return ""
    return f"; {tied:,} items share w={edge:.3g}, {in_block} of them shown"


def missed_ood(
    scores: dict[str, np.ndarray], sets: list[str], n: int = COLUMNS
) -> list[tuple[str, int, float]]:
    """The ``n`` scored OOD items with the highest score (most ID-like) over ``sets``:
    (set, index, score)."""
    items = [
        (s, int(i), float(m))
        for s in sets
        if s in scores
        for i, m in zip(scores[f"{s}__idx"], scores[s], strict=True)
    ]
    return sorted(items, key=lambda t: -t[2])[:n]


def missed_ood_gallery(
    ood: dict[str, ImageSource],
    scores: dict[str, dict[str, np.ndarray]],
    seed: int,
    title: str,
    path: Path,
    score: str = "msp",
) -> Path | None:
    """One row per variant: its most confidently missed OOD test images with set and score
    (named by ``score``); None when no variant has scored items of these sets."""
    short = score_names(score)[0]
    blocks: list[Block] = []
    for v, sc in scores.items():
        top = missed_ood(sc, list(ood))
        if top:
            pictures = np.stack([to_rgb(ood[s], np.array([i]))[0] for s, i, _ in top])
            caps = [f"{s}\n{short} {m:.3g}" for s, _, m in top]
            blocks.append(
                (f"{v}: OOD images with the highest {short} (seed {seed})", pictures, caps, 1)
            )
    return _gallery(title, blocks, path) if blocks else None
