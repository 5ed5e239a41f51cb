"""On-device batch samplers: a batch is drawn with torch random indices and gathered by indexing.

No per-sample Python and no DataLoader: the frames of the whole sequence live on the training device as
one [T * H * W, 3] tensor, and one ``index_select`` gathers a batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


def pixel_centres(pix: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Flat pixel indices [N] (y * W + x) -> pixel-centre coordinates uv [N, 2] in (0, 1), x right, y down."""
    x = (pix % width).to(torch.float32)
    y = torch.div(pix, width, rounding_mode="floor").to(torch.float32)
    return torch.stack(((x + 0.5) / width, (y + 0.5) / height), dim=1)


def source_table(components: torch.Tensor | None, frames: torch.Tensor) -> torch.Tensor | None:
    """Source components [T, H, W, S, 3] -> one row per texel of every frame, [T * H * W, S, 3] (a view;
    None stays None). Raises ValueError when they do not match ``frames`` [T, H, W, 3]."""
    if components is None:
        return None
    if components.dim() != 5 or components.shape[:3] != frames.shape[:3] or components.shape[4] != 3:
        raise ValueError(f"source components {tuple(components.shape)} do not match frames {tuple(frames.shape)} "
                         f"(expected [T, H, W, S, 3])")
    return components.to(frames.device).reshape(-1, components.shape[3], 3)


def gather_sources(table: torch.Tensor | None, flat_index: torch.Tensor) -> torch.Tensor | None:
    """Rows ``flat_index`` [N] of a :func:`source_table`: [N, S, 3] (None without one)."""
    return None if table is None else table.index_select(0, flat_index)


@dataclass
class PixelBatch:
    """A batch of N texels: where, when, and what they should be.

    frame_index [N] long index into the sequence; pix [N] long flat pixel index; uv [N, 2] pixel centres
    in (0, 1); t [N] float32 hours; target [N, 3] values in the training space; valid [N] bool or None
    (None: every texel valid); components [N, S, 3] the lighting of each source (training space, sources
    in the order of ``airender.data.sequence.SOURCES``) or None. In patch mode the last
    ``num_patches * patch_size ** 2`` texels are ``num_patches`` patches of P x P texels in patch-major,
    row-major order.
    """

    frame_index: torch.Tensor
    pix: torch.Tensor
    uv: torch.Tensor
    t: torch.Tensor
    target: torch.Tensor
    valid: torch.Tensor | None = None
    patch_size: int = 0
    num_patches: int = 0
    components: torch.Tensor | None = None

    @property
    def patch_texels(self) -> int:
        """Number of texels at the end of the batch that form the patches (B * P * P)."""
        return self.num_patches * self.patch_size * self.patch_size

    @staticmethod
    def join(texels: "PixelBatch", patches: "PixelBatch") -> "PixelBatch":
        """Random texels followed by patch texels, decoded in one forward pass; the patches stay the tail."""
        valid = None
        if texels.valid is not None or patches.valid is not None:
            def flags(b: PixelBatch) -> torch.Tensor:
                return b.valid if b.valid is not None else torch.ones_like(b.pix, dtype=torch.bool)
            valid = torch.cat([flags(texels), flags(patches)])
        components = None if texels.components is None or patches.components is None else \
            torch.cat([texels.components, patches.components])
        return PixelBatch(frame_index=torch.cat([texels.frame_index, patches.frame_index]),
                          pix=torch.cat([texels.pix, patches.pix]), uv=torch.cat([texels.uv, patches.uv]),
                          t=torch.cat([texels.t, patches.t]), target=torch.cat([texels.target, patches.target]),
                          valid=valid, patch_size=patches.patch_size, num_patches=patches.num_patches,
                          components=components)


class PixelSampler:
    """Uniform random (frame, valid texel) pairs.

    Args:
        frames: [T, H, W, 3] training-space values on the training device.
        times: [T] hours of the frames.
        valid_pix: [N] long flat indices of valid texels (the mask is honoured by sampling only these).
        frame_ids: [K] long indices of the frames to train on (hold-out hours excluded).
        components: [T, H, W, S, 3] the lighting split by source (training space), gathered by the same
            index as the frames into ``PixelBatch.components``; None: no source targets.
    """

    def __init__(self, frames: torch.Tensor, times: torch.Tensor, valid_pix: torch.Tensor,
                 frame_ids: torch.Tensor, components: torch.Tensor | None = None):
        if frame_ids.numel() == 0:
            raise ValueError("no frames to train on")
        if valid_pix.numel() == 0:
            raise ValueError("the mask has no valid texel")
        self.num_frames, self.height, self.width, _ = frames.shape
        self.device = frames.device
        self.flat = frames.reshape(-1, 3)
        self.times = times.to(device=self.device, dtype=torch.float32)
        self.valid_pix = valid_pix.to(self.device)
        self.frame_ids = frame_ids.to(self.device)
        self.flat_components = source_table(components, frames)

    def sample(self, batch_size: int, generator: torch.Generator) -> PixelBatch:
        """Draw ``batch_size`` texels with replacement; ``generator`` lives on the training device."""
        pick_frame = torch.randint(self.frame_ids.numel(), (batch_size,), generator=generator, device=self.device)
        pick_pix = torch.randint(self.valid_pix.numel(), (batch_size,), generator=generator, device=self.device)
        frame_index = self.frame_ids[pick_frame]
        pix = self.valid_pix[pick_pix]
        flat_index = frame_index * (self.height * self.width) + pix
        target = self.flat.index_select(0, flat_index)
        return PixelBatch(frame_index=frame_index, pix=pix, uv=pixel_centres(pix, self.height, self.width),
                          t=self.times[frame_index], target=target,
                          components=gather_sources(self.flat_components, flat_index))


class PatchSampler:
    """Random P x P patches: random training frame, random position inside the valid region.

    One batch of B patches is gathered on the device in one ``index_select`` of B * P * P texels, in
    patch-major, row-major order, so ``values.reshape(B, P, P, 3)`` gives the patches. With a mask, a
    patch position is a candidate when at least ``min_valid`` of its texels are valid; the invalid
    texels of a patch are flagged in ``PixelBatch.valid`` [B * P * P] so losses can leave them out.

    Args: as PixelSampler, plus ``mask`` [H, W] bool or None and ``patch_size`` P.
    """

    def __init__(self, frames: torch.Tensor, times: torch.Tensor, mask: torch.Tensor | None,
                 frame_ids: torch.Tensor, patch_size: int, min_valid: float = 0.5,
                 components: torch.Tensor | None = None):
        self.num_frames, self.height, self.width, _ = frames.shape
        if patch_size < 2 or patch_size > min(self.height, self.width):
            raise ValueError(f"--patch_size {patch_size} does not fit {self.width}x{self.height} frames")
        if frame_ids.numel() == 0:
            raise ValueError("no frames to train on")
        self.device = frames.device
        self.patch_size = patch_size
        self.flat = frames.reshape(-1, 3)
        self.flat_components = source_table(components, frames)
        self.times = times.to(device=self.device, dtype=torch.float32)
        self.frame_ids = frame_ids.to(self.device)
        self.mask_flat = None if mask is None else mask.to(self.device).reshape(-1)
        span_y, span_x = self.height - patch_size + 1, self.width - patch_size + 1
        if mask is None:
            corners = torch.arange(span_y * span_x, device=self.device)
            self.corners = (corners // span_x) * self.width + corners % span_x
        else:
            fraction = torch.nn.functional.avg_pool2d(mask.to(self.device, torch.float32)[None, None],
                                                      patch_size, stride=1)[0, 0]
            ys, xs = torch.nonzero(fraction >= min_valid, as_tuple=True)
            if ys.numel() == 0:
                raise ValueError(f"no {patch_size}x{patch_size} patch is at least {min_valid:.0%} valid; "
                                 "use a smaller --patch_size")
            self.corners = ys * self.width + xs
        dy, dx = torch.meshgrid(torch.arange(patch_size, device=self.device),
                                torch.arange(patch_size, device=self.device), indexing="ij")
        self.offsets = (dy * self.width + dx).reshape(-1)

    def sample(self, num_patches: int, generator: torch.Generator) -> PixelBatch:
        pick_frame = torch.randint(self.frame_ids.numel(), (num_patches,), generator=generator, device=self.device)
        pick_corner = torch.randint(self.corners.numel(), (num_patches,), generator=generator, device=self.device)
        frame_index = self.frame_ids[pick_frame]
        pix = (self.corners[pick_corner][:, None] + self.offsets[None, :]).reshape(-1)
        per_texel_frame = frame_index.repeat_interleave(self.offsets.numel())
        flat_index = per_texel_frame * (self.height * self.width) + pix
        target = self.flat.index_select(0, flat_index)
        valid = None if self.mask_flat is None else self.mask_flat.index_select(0, pix)
        return PixelBatch(frame_index=per_texel_frame, pix=pix, uv=pixel_centres(pix, self.height, self.width),
                          t=self.times[per_texel_frame], target=target, patch_size=self.patch_size, valid=valid,
                          num_patches=num_patches, components=gather_sources(self.flat_components, flat_index))
