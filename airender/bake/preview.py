"""The bake's contact sheet: every source of one atlas at a few times of day, tone-mapped, in one PNG."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from airender.data.virtual_texture import COMPONENTS, COMPONENT_FOLDERS
from airender.fileio import atomic_path
from airender.images import srgb_encode

SHEET_HOURS = (24.0, 6.0, 9.0, 12.0, 15.0, 18.1, 21.0)
SHEET_PANEL_TEXELS = 256
LUMINANCE = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def shrink(image: np.ndarray, longest: int = SHEET_PANEL_TEXELS) -> np.ndarray:
    """Box-filter [H, W, C] down by an integer factor so that its longest side is at most ``longest``."""
    factor = max(1, int(np.ceil(max(image.shape[:2]) / longest)))
    if factor == 1:
        return image.astype(np.float32)
    h, w = (image.shape[0] // factor) * factor, (image.shape[1] // factor) * factor
    return image[:h, :w].reshape(h // factor, factor, w // factor, factor, -1).mean(axis=(1, 3)).astype(np.float32)


def tone_map(image: np.ndarray, exposure: float) -> np.ndarray:
    """Linear HDR [H, W, 3] -> uint8 sRGB: ``exposure`` scale, then Reinhard ``x / (1 + x)`` scaled so that
    1.0 after exposure shows at about 80 % grey (highlights roll off instead of clipping)."""
    x = np.maximum(exposure * image, 0.0)
    return np.round(srgb_encode(1.6 * x / (1.0 + x)) * 255.0).astype(np.uint8)


def sheet_exposure(noon_original: np.ndarray, valid: np.ndarray) -> float:
    """One exposure for the whole sheet: the 95th luminance percentile of the valid texels at noon maps to 1."""
    luminance = noon_original[valid] @ LUMINANCE
    p95 = float(np.percentile(luminance, 95.0)) if luminance.size else 0.0
    return 1.0 / p95 if p95 > 0 else 1.0


def sheet_times(times: list[float]) -> list[float]:
    """The columns of the contact sheet: for each of ``SHEET_HOURS`` the nearest of the baked ``times``
    (periodic), each once, in the order of ``SHEET_HOURS``."""
    def gap(a: float, b: float) -> float:
        d = abs(a - b) % 24.0
        return min(d, 24.0 - d)

    picked = [min(times, key=lambda t: gap(t, hour)) for hour in SHEET_HOURS]
    return list(dict.fromkeys(picked))


def write_contact_sheet(path: Path, panels: dict[tuple[str, float], np.ndarray], valid: np.ndarray,
                        title: str, hours: list[float] | tuple[float, ...] = SHEET_HOURS) -> None:
    """Rows = components (``COMPONENTS``: original and the three sources), columns = ``hours`` (default
    ``SHEET_HOURS``); ``panels[(component, hour)]`` is a shrunk [h, w, 3] image, ``valid`` the shrunk [h, w]
    bool coverage. One exposure (from Original at the hour nearest noon) for every panel, so that panels
    compare; each panel is labelled with its largest value. Written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    noon = min(hours, key=lambda h: abs(h - 12.0))
    exposure = sheet_exposure(panels[("original", noon)], valid)
    height, width = valid.shape
    inches = 2.2 / max(height, width)
    fig, axes = plt.subplots(len(COMPONENTS), len(hours), squeeze=False,
                             figsize=(len(hours) * width * inches + 0.8,
                                      len(COMPONENTS) * (height * inches + 0.25) + 0.6))
    for r, component in enumerate(COMPONENTS):
        for c, hour in enumerate(hours):
            image = panels[(component, hour)]
            ax = axes[r][c]
            ax.imshow(tone_map(image, exposure), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            clock = "0 h (24.00)" if hour == 24.0 else f"{hour:g} h"
            ax.set_title(f"{clock}  max {float(image.max()):.3g}", fontsize=7)
            if c == 0:
                ax.set_ylabel(COMPONENT_FOLDERS[component], fontsize=8)
    fig.suptitle(f"{title}  (one exposure {exposure:.3g}, Reinhard, sRGB)", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
