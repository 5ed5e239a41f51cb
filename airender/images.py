"""Writing frames (PNG 8-bit, EXR float32), previews of HDR data, error heat maps and contact sheets."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from airender.fileio import atomic_path


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] -> sRGB [0, 1] (IEC 61966-2-1 transfer curve); input is clipped to [0, 1]."""
    linear = np.clip(linear, 0.0, 1.0)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(linear, 1.0 / 2.4) - 0.055)


def to_numpy_image(image: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    return np.asarray(image, dtype=np.float32)


def preview_uint8(image: torch.Tensor | np.ndarray, is_hdr: bool, exposure: float = 1.0) -> np.ndarray:
    """Display-space image [H, W, 3] -> uint8 sRGB for looking at: LDR values as they are, HDR radiance
    through ``srgb(clip(exposure * x))``."""
    array = to_numpy_image(image)
    encoded = srgb_encode(exposure * array) if is_hdr else np.clip(array, 0.0, 1.0)
    return np.round(encoded * 255.0).astype(np.uint8)


def hdr_preview_exposure(reference: torch.Tensor | np.ndarray) -> float:
    """One exposure for previews of an HDR sequence: maps the 99th luminance percentile to 0.9."""
    array = to_numpy_image(reference)
    luminance = array @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    p99 = float(np.percentile(luminance, 99.0))
    return 0.9 / p99 if p99 > 0 else 1.0


def save_png(path: str | Path, pixels: np.ndarray) -> None:
    """Write uint8 [H, W, 3] (or [H, W]) atomically."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(pixels).save(tmp, format="PNG")


def save_exr(path: str | Path, image: torch.Tensor | np.ndarray) -> None:
    """Write linear float32 RGB [H, W, 3] as EXR atomically."""
    import OpenEXR

    array = np.ascontiguousarray(to_numpy_image(image))
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with atomic_path(path) as tmp:
        with OpenEXR.File(header, {"RGB": array}) as exr:
            exr.write(str(tmp))


def save_frame(path: str | Path, image: torch.Tensor, is_hdr: bool, preview_exposure: float = 1.0) -> None:
    """Save a display-space frame: ``.exr`` keeps HDR floats; ``.png`` stores 8-bit sRGB (HDR data are
    previewed with ``preview_exposure``)."""
    path = Path(path)
    if path.suffix.lower() == ".exr":
        save_exr(path, image)
    elif path.suffix.lower() == ".png":
        save_png(path, preview_uint8(image, is_hdr, preview_exposure))
    else:
        raise ValueError(f"{path}: output must end in .png or .exr")


def error_heatmap(pred: np.ndarray, ref: np.ndarray, vmax: float = 0.1) -> np.ndarray:
    """Per-pixel error |pred - ref| (mean over channels) as a uint8 [H, W, 3] 'inferno' heat map;
    ``vmax`` maps to the hottest colour."""
    from matplotlib import colormaps

    error = np.abs(pred.astype(np.float32) - ref.astype(np.float32)).mean(axis=2) / 255.0
    colours = colormaps["inferno"](np.clip(error / vmax, 0.0, 1.0))[..., :3]
    return np.round(colours * 255.0).astype(np.uint8)


def save_image_grid(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path: str | Path, title: str = "",
                    panel_inches: float = 2.6, fontsize: int = 9) -> None:
    """A grid of images: one row per (label, [(column title, uint8 [H, W, 3]), ...]), written atomically.
    Column titles are shown on the first row, labels on the left."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height, width = rows[0][1][0][1].shape[:2]
    columns = max(len(panels) for _, panels in rows)
    scale = panel_inches / max(width, 1)
    fig, axes = plt.subplots(len(rows), columns, squeeze=False,
                             figsize=(columns * width * scale + 0.6, len(rows) * height * scale + 0.6))
    for r, (label, panels) in enumerate(rows):
        for c, (name, image) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(image, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=fontsize)
            if c == 0:
                ax.set_ylabel(label, fontsize=fontsize)
    top = 1.0
    if title:
        fig.suptitle(title, fontsize=fontsize + 1)
        top = 1.0 - 0.3 / fig.get_figheight()  # keep the column titles clear of the sheet's title
    fig.tight_layout(rect=(0.0, 0.0, 1.0, top))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def contact_sheet(rows: list[tuple[str, np.ndarray, np.ndarray]], path: str | Path, vmax: float = 0.1,
                  title: str = "") -> None:
    """A sheet of rows 'ground truth | prediction | error heat map', one row per labelled time.

    rows: (label, ground truth uint8 [H, W, 3], prediction uint8 [H, W, 3]).
    """
    grid = [(label, [("ground truth", truth), ("prediction", pred),
                     (f"|error| (0..{vmax:g})", error_heatmap(pred, truth, vmax))]) for label, truth, pred in rows]
    save_image_grid(grid, path, title=title)


def save_gif(path: str | Path, frames: list[np.ndarray], seconds_per_frame: float = 0.12) -> None:
    """Animated GIF of uint8 frames [H, W, 3], looping forever."""
    import imageio.v3 as iio

    with atomic_path(path) as tmp:
        iio.imwrite(tmp, np.stack(frames), extension=".gif", duration=int(seconds_per_frame * 1000), loop=0)
