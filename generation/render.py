"""Lossless PNGs of stimuli (no upscaling: the browser scales with nearest-neighbour) and the
figures a researcher looks at: accuracy vs epsilon, transfer heatmap, stimulus grids."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(C,H,W) or (H,W) floats in [0,1] -> (H,W) grayscale or (H,W,3) RGB uint8 (what the PNG holds)."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)
    return np.clip(np.rint(arr * 255), 0, 255).astype(np.uint8)


def write_png(path: Path, image: np.ndarray) -> None:
    Image.fromarray(to_uint8(image)).save(path, format="PNG", optimize=True)


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=np.float32) / 255.0


def plot_accuracy_vs_epsilon(metrics: dict[str, Any], attack: str, path: Path) -> None:
    curves = metrics["accuracy_vs_epsilon"][attack]
    eps = metrics["epsilons"]
    sources = list(curves)
    cols = min(4, len(sources))
    rows = int(np.ceil(len(sources) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.9 * rows), squeeze=False, sharey=True)
    for ax, source in zip(axes.flat, sources, strict=False):  # the grid may have spare cells
        for evaluated, acc in curves[source].items():
            style = dict(lw=2.4, color="black") if evaluated == source else dict(lw=1.2)
            ax.plot(eps, acc, marker="o", ms=3, label=evaluated, **style)
        ax.set_title(f"made against: {source}", fontsize=9)
        ax.set_xlabel("epsilon (L-inf)")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(sources):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("accuracy")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 5), fontsize=8,
               title="evaluated model (black: white-box)", title_fontsize=8)
    fig.suptitle(f"{attack.upper()}: accuracy vs epsilon, white-box and transferred", fontsize=11)
    fig.tight_layout(rect=(0, 0.1 + 0.02 * (len(labels) > 5), 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_transfer_heatmap(metrics: dict[str, Any], attack: str, path: Path) -> None:
    tm = metrics["jsma_transfer"] if attack == "jsma" else metrics["transfer_matrix"][attack]
    acc = np.array(tm["accuracy"])
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * acc.shape[1], 1.0 + 0.6 * acc.shape[0]))
    im = ax.imshow(acc, vmin=0, vmax=1, cmap="viridis")
    ax.set_xticks(range(acc.shape[1]), tm["cols_source"], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(acc.shape[0]), tm["rows_evaluated"], fontsize=8)
    ax.set_xlabel("source model (attack made against)")
    ax.set_ylabel("evaluated model")
    for (i, j), v in np.ndenumerate(acc):
        ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    at = f"theta = {tm['theta']}, gamma = {tm['gamma']}" if attack == "jsma" else f"epsilon = {tm['epsilon']}"
    ax.set_title(f"{attack.upper()} accuracy at {at}", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _show(ax, image: np.ndarray | None, title: str = "", color: str = "black") -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if image is not None:
        ax.imshow(to_uint8(image), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        ax.set_facecolor("#f2f2f2")
    if title:
        ax.set_title(title, fontsize=7, color=color, pad=2)


def _rgb(image: np.ndarray) -> np.ndarray:
    """(C,H,W) floats -> (H,W,3) uint8, grayscale repeated into three channels."""
    arr = to_uint8(image)
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr


def mosaic(cells: list[list[np.ndarray | None]], frames: list[list[str | None]], gap: int = 2) -> np.ndarray:
    """One RGB picture of a grid of equally sized images: `None` is a light-grey blank, a frame colour
    ("red") draws a one-pixel border inside the gap. One imshow instead of one axes per image keeps a
    10-class grid of dozens of rows fast to draw."""
    first = next(c for row in cells for c in row if c is not None)
    h, w = _rgb(first).shape[:2]
    out = np.full((len(cells) * (h + gap) + gap, len(cells[0]) * (w + gap) + gap, 3), 255, np.uint8)
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            y, x = gap + r * (h + gap), gap + c * (w + gap)
            out[y:y + h, x:x + w] = 242 if image is None else _rgb(image)
            if frames[r][c] == "red":
                out[y - 1:y + h + 1, [x - 1, x + w]] = (220, 0, 0)
                out[[y - 1, y + h], x - 1:x + w + 1] = (220, 0, 0)
    return out


def plot_grid_per_defense(stimuli: list, defense: str, classes: list[str], path: Path) -> None:
    """Rows: source images; columns: the original, then one per target class (blank if not made,
    framed red if the attack failed)."""
    mine = [s for s in stimuli if s.defense == defense]
    sources = list(dict.fromkeys(s.source.id for s in mine))
    by_key = {(s.source.id, s.target): s for s in mine}
    src_of = {s.source.id: s.source for s in mine}
    k = len(classes)
    cells, frames = [], []
    for sid in sources:
        row = [src_of[sid].image.cpu().numpy()] + [None] * k
        frame: list[str | None] = [None] * (k + 1)
        for t in range(k):
            s = by_key.get((sid, t))
            if s is not None:
                row[t + 1] = s.image.cpu().numpy()
                frame[t + 1] = None if s.success else "red"
        cells.append(row)
        frames.append(frame)
    picture = mosaic(cells, frames)
    cell_w = picture.shape[1] / (k + 1)
    fig, ax = plt.subplots(figsize=(0.8 * (k + 1), 0.8 * len(sources) + 0.6))
    ax.imshow(picture, interpolation="nearest")
    ax.set_xticks([cell_w * (c + 0.5) for c in range(k + 1)], ["original"] + [f"→{n}" for n in classes],
                  fontsize=7, rotation=45 if max(map(len, classes)) > 2 else 0)
    ax.xaxis.tick_top()
    ax.set_yticks([picture.shape[0] / len(sources) * (r + 0.5) for r in range(len(sources))],
                  [classes[src_of[sid].label] for sid in sources], fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{defense}: original × target (red frame = attack failed)", fontsize=9)
    fig.tight_layout(pad=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_matched_grid(stimuli: list, defenses: list[str], classes: list[str], path: Path,
                      max_rows: int = 20) -> None:
    """The same (source, target) against every defense, side by side: what a compare trial shows."""
    groups = list(dict.fromkeys(s.group for s in stimuli))[:max_rows]
    by_key = {(s.group, s.defense): s for s in stimuli}
    fig, axes = plt.subplots(len(groups), len(defenses) + 1,
                             figsize=(1.0 * (len(defenses) + 1), 0.95 * len(groups)), squeeze=False)
    for r, g in enumerate(groups):
        first = next(s for s in stimuli if s.group == g)
        _show(axes[r, 0], first.source.image.cpu().numpy(),
              f"{classes[first.source.label]}→{classes[first.target]}")
        for c, d in enumerate(defenses):
            s = by_key.get((g, d))
            status = ""
            if s is not None:  # design "ross" has no epsilon: its size is the L2 norm
                size = f"L2={s.norms['l2']:.1f}" if s.budget is None else f"ε={s.budget:.2f}"
                status = size if s.success else f"failed {size}"
            title = (d + "\n" if r == 0 else "") + status
            _show(axes[r, c + 1], s.image.cpu().numpy() if s else None, title,
                  "black" if s is not None and s.success else "red")
    fig.suptitle("matched stimuli: same source image and target, one column per defense", fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.98), pad=0.3)
    fig.savefig(path, dpi=100)
    plt.close(fig)
