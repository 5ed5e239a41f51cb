"""The network between the hours as shader passes: what airender.runtime.between decodes, on the GPU.

At an hour t strictly between two stored hours h0 < h1 during daylight (the rule of
airender.runtime.between.BetweenHours.blend, written again in viewer.js), a frame is

    (1 - w) I(h0) + w I(h1)        in linear light, w = sigmoid(logit + logit(clamp(s, 0.02, 0.98)))

where s is the fraction of the way from h0 to h1 and the logit [H, W] comes from the blend-weight network
(airender.between.net.BlendWeightNet) run on four linear frames: the stored hours before h0, h0, h1 and
after h1. The field's own shader decodes those frames (GLSL: uniform ``u_linear`` = 1; WGSL: uniform
``linear`` = 1: linear light instead of display values, rows from the top); the network then runs as a
list of passes over tensors [C, h, w]:

    input     (earlier, before, after, later frames, s) -> [16, H, W]: log(max(I, 0) + 1e-3) of before
              and after, their difference, the differences over the intervals either side, and s
    conv      3 x 3 convolution (stride, padding, dilation) of tensor ``a``, or of ``a`` and ``b``
              concatenated in that order, plus bias; ReLU after every convolution but the last
    upsample  bilinear resize (align_corners=False, torch ``F.interpolate``) of ``a`` to the output size
    blend     the display frame from I(h0) (``a``), I(h1) (``b``) and the logit (``c``)

Tensors live in slots, reused once a tensor is no longer read (:func:`between_passes`). The weights are
the pack's values (float16 or int8 as the run stored them, read back as float32), in two layouts:

    GLSL   u_bweights RGBA32F, BWEIGHTS_WIDTH texels a row: per convolution at texel ``glsl_offset``,
           one texel of biases per group of 4 output channels, then for group g, input channel i (the
           channels of ``a`` padded to whole groups of 4, then those of ``b``) and tap k = 3 ky + kx the
           texel of the 4 output channels' weights at texel G + (g C_in + i) 9 + k. A tensor is an
           RGBA32F texture array, layer g holding channels 4 g .. 4 g + 3.
    WGSL   weights: array<f32>: per convolution at ``wgsl_offset`` the torch weight [C_out, C_in, 3, 3]
           then the bias [C_out]. A tensor is array<f32> [C, h, w]; a frame is the field shader's output,
           array<vec4<f32>> [H * W].
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from importlib import resources

import numpy as np

from airender.runtime.between import ENCODER_LAYERS, INPUT_CHANNELS
from airender.runtime.model import FieldModel

BWEIGHTS_WIDTH = 1024
PASS_OPS = ("input", "conv", "upsample", "blend")  # the kinds of pass (a GLSL program, a WGSL entry point each)
UP_LAYERS = ("up3.0", "up2.0", "up1.0")  # each: the lower tensor upsampled, then the encoder level of that size
OUTPUT_LAYER = "up1.2"


@dataclass
class BetweenPasses:
    """The passes of the network between the hours of one model.

    ``spec``: the pack's ``between`` section (stored hours, light-switch hours); ``slots``: {slot: [C, h, w]}
    (every tensor of the passes is in one of them); ``passes``: the passes in order, each a dict with ``op``
    (input, conv, upsample, blend), the slots it reads (``a``, ``b``, ``c``; "frame:earlier", ..., for the
    four decoded frames) and writes (``out``), and for convolutions ``layer``, ``stride``, ``padding``,
    ``dilation``, ``relu``, ``glsl_offset`` (texels), ``wgsl_offset`` (floats); ``glsl_weights`` [n, 4]
    float32 texels; ``wgsl_weights`` [n] float32."""

    spec: dict
    slots: dict[str, list[int]]
    passes: list[dict]
    glsl_weights: np.ndarray
    wgsl_weights: np.ndarray

    def describe(self) -> dict:
        """The JSON description written with the shaders (everything but the weights)."""
        return {"hours": [float(h) for h in self.spec["hours"]],
                "switch_hours": [float(h) for h in self.spec["switch_hours"]] if self.spec.get("switch_hours")
                else None, "slots": self.slots, "passes": self.passes}


def _conv_size(size: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - 2 * dilation - 1) // stride + 1


class _Slots:
    """Tensors assigned to slots of their shape; a slot is free again after its tensor's last read."""

    def __init__(self, last_read: dict[str, int]):
        self.last_read = last_read
        self.shapes: dict[str, list[int]] = {}
        self.free: list[str] = []
        self.of: dict[str, str] = {}

    def place(self, tensor: str, shape: list[int]) -> str:
        for slot in self.free:
            if self.shapes[slot] == shape:
                self.free.remove(slot)
                break
        else:
            slot = f"t{len(self.shapes)}"
            self.shapes[slot] = shape
        self.of[tensor] = slot
        return slot

    def release_after(self, step: int) -> None:
        for tensor, last in self.last_read.items():
            if last == step and tensor in self.of:
                self.free.append(self.of[tensor])


def _glsl_conv(weight: np.ndarray, bias: np.ndarray, split: int | None) -> np.ndarray:
    """Texels [n, 4] of one convolution (see the module docstring); ``split``: channels of ``a`` when two
    tensors are concatenated."""
    c_out, c_in = weight.shape[:2]
    parts = [weight] if split is None else [weight[:, :split], weight[:, split:]]
    padded = np.concatenate([np.pad(p, ((0, 0), (0, 4 * math.ceil(p.shape[1] / 4) - p.shape[1]), (0, 0), (0, 0)))
                             for p in parts], axis=1)  # [C_out, C_in padded, 3, 3]
    groups = math.ceil(c_out / 4)
    padded = np.pad(padded, ((0, 4 * groups - c_out), (0, 0), (0, 0), (0, 0)))
    texels = padded.reshape(groups, 4, padded.shape[1], 9).transpose(0, 2, 3, 1).reshape(-1, 4)
    biases = np.pad(bias, (0, 4 * groups - c_out)).reshape(groups, 4)
    return np.concatenate([biases, texels]).astype(np.float32)


def between_passes(spec: dict, arrays: dict[str, np.ndarray], height: int, width: int) -> BetweenPasses:
    """The passes of the network of a pack's ``between`` section ``spec`` with its arrays (``between.<layer>``
    weights and biases, float32) for frames of ``height`` x ``width`` pixels."""
    channels = int(spec["channels"])
    steps: list[dict] = [{"op": "input", "a": "frame:earlier", "b": "frame:before", "c": "frame:after",
                          "d": "frame:later", "out": "input", "shape": [INPUT_CHANNELS, height, width]}]
    shape, previous = steps[0]["shape"], "input"
    for layers in ENCODER_LAYERS.values():
        for name, stride, padding, dilation in layers:
            shape = [channels, _conv_size(shape[1], stride, padding, dilation),
                     _conv_size(shape[2], stride, padding, dilation)]
            steps.append({"op": "conv", "layer": name, "a": previous, "b": None, "out": name, "shape": shape,
                          "stride": stride, "padding": padding, "dilation": dilation, "relu": True})
            previous = name
    levels = [layers[-1][0] for layers in ENCODER_LAYERS.values()]  # x1 .. x4: each level's last convolution
    shapes = {step["out"]: step["shape"] for step in steps}
    low = levels[-1]
    for layer, skip in zip(UP_LAYERS, reversed(levels[:-1])):
        size = shapes[skip][1:]
        steps.append({"op": "upsample", "a": low, "out": f"up:{layer}", "shape": [channels, *size]})
        steps.append({"op": "conv", "layer": layer, "a": f"up:{layer}", "b": skip, "out": layer,
                      "shape": [channels, *size], "stride": 1, "padding": 1, "dilation": 1, "relu": True})
        shapes[f"up:{layer}"] = shapes[layer] = [channels, *size]
        low = layer
    steps.append({"op": "conv", "layer": OUTPUT_LAYER, "a": low, "b": None, "out": "logit",
                  "shape": [1, height, width], "stride": 1, "padding": 1, "dilation": 1, "relu": False})
    steps.append({"op": "blend", "a": "frame:before", "b": "frame:after", "c": "logit", "out": "frame:display"})

    last_read = {step[key]: k for k, step in enumerate(steps) for key in ("a", "b", "c", "d") if step.get(key)}
    slots = _Slots(last_read)
    glsl, wgsl, passes = [], [], []
    glsl_size = wgsl_size = 0
    for k, step in enumerate(steps):
        done = {"op": step["op"], **{key: slots.of.get(step[key], step[key]) for key in ("a", "b", "c", "d")
                                     if step.get(key)}}
        if step["op"] == "conv":
            weight = np.asarray(arrays[f"between.{step['layer']}.weight"], np.float32)
            bias = np.asarray(arrays[f"between.{step['layer']}.bias"], np.float32)
            texels = _glsl_conv(weight, bias, shapes[step["a"]][0] if step["b"] else None)
            done.update({key: step[key] for key in ("layer", "stride", "padding", "dilation", "relu")},
                        glsl_offset=glsl_size, wgsl_offset=wgsl_size)
            glsl.append(texels)
            wgsl += [weight.ravel(), bias.ravel()]
            glsl_size += texels.shape[0]
            wgsl_size += weight.size + bias.size
        done["out"] = step["out"] if step["op"] == "blend" else slots.place(step["out"], step["shape"])
        passes.append(done)
        slots.release_after(k)
    return BetweenPasses(spec=dict(spec), slots=slots.shapes, passes=passes,
                         glsl_weights=np.concatenate(glsl), wgsl_weights=np.concatenate(wgsl).astype(np.float32))


def model_passes(model: FieldModel) -> BetweenPasses | None:
    """The passes of the network between the hours that ``model`` (a pack's runtime model) carries, else None."""
    spec = model.header["model"].get("between")
    return between_passes(spec, model.arrays, model.height, model.width) if spec else None


def glsl_programs() -> dict[str, str]:
    """The fragment shaders of the passes (GLSL ES 3.0), by op."""
    template = resources.files(__package__).joinpath("between.frag.glsl").read_text(encoding="utf-8")
    head = ["#version 300 es", "precision highp float;", "precision highp int;", "precision highp sampler2D;",
            "precision highp sampler2DArray;", f"#define BWEIGHTS_WIDTH {BWEIGHTS_WIDTH}"]
    return {op: "\n".join(head + [f"#define PASS_{other.upper()} {int(other == op)}" for other in PASS_OPS]
                           + [template]) for op in PASS_OPS}


def wgsl_module() -> str:
    """The compute shader of the passes (WGSL; entry points input_pass, conv_pass, upsample_pass, blend_pass)."""
    return resources.files(__package__).joinpath("between.comp.wgsl").read_text(encoding="utf-8")
