"""A synthetic floor whose shadows move linearly in time: a post's square shadow that translates and a
building's straight front that sweeps (the between-hours tests' scene)."""
import numpy as np
import torch

from airender.data.sequence import linear_to_srgb, srgb_to_linear

HEIGHT, WIDTH = 40, 96
LIT, SHADE = 200, 60  # sRGB codes of the lit floor and of its shadow
SQUARE = 8  # side of the post's shadow, pixels
SPEED = 3.0  # pixels per hour, both shadows


def texture() -> np.ndarray:
    """A fixed albedo pattern [H, W] in [0.8, 1] (the floor is not flat grey), the same at every hour."""
    rng = np.random.default_rng(3)
    return 0.8 + 0.2 * rng.random((HEIGHT, WIDTH))


def floor(hour: float, square: bool = True, front: bool = True) -> np.ndarray:
    """Linear [H, W, 3] floor at ``hour``: the square shadow's left side at x = 20 + SPEED * (hour - 6) in the
    top half, the front (shadow left of x = 10 + SPEED * (hour - 6)) in the bottom half."""
    shade = np.ones((HEIGHT, WIDTH))
    x = np.arange(WIDTH) + 0.5  # pixel centres
    if square:
        left = 20 + SPEED * (hour - 6)
        cover = np.clip(np.minimum(x + 0.5 - left, left + SQUARE - (x - 0.5)), 0, 1)  # area coverage
        shade[6:6 + SQUARE] = 1 - cover
    if front:
        edge = 10 + SPEED * (hour - 6)
        shade[24:36] = np.clip(x - edge, 0, 1)  # 0 = in the shadow
    lit, dark = (srgb_to_linear(torch.tensor(v / 255.0)).item() for v in (LIT, SHADE))
    value = texture() * (dark + (lit - dark) * shade)
    return np.repeat(value[..., None], 3, axis=2)


def to_png(linear: np.ndarray) -> np.ndarray:
    return np.round(linear_to_srgb(torch.from_numpy(linear).clamp(0, 1)).numpy() * 255).astype(np.uint8)
