"""``airender export --ckpt C --format pack|onnx|glsl|wgsl|html|level|contest --out PATH [--quant fp32|fp16|int8]``
and ``airender view --ckpt C [--port P] [--truth DIR] [--level BAKE]``.

``--format level`` takes the bake (``--data_dir``) whose lightmap the checkpoint was trained on and writes a page
of the level in 3D (airender.export.level). ``--format contest`` takes one ``--ckpt`` per lightmap and the
dataset (``--data_dir``) they belong to;
a tiled checkpoint (``airender train --tile_size N``) exports with it alone (the other formats refuse it).

Bad input (a missing or foreign checkpoint, an unknown format or precision, an output path that cannot
be written, a model a format does not support) raises InputError before anything is written.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from airender.between.cli import run_network
from airender.cli_args import add_ckpt_argument, add_data_dir_argument, add_subcommand
from airender.errors import InputError
from airender.export.contest import write_contest
from airender.export.level import write_level_page
from airender.export.onnx_export import prepare_path, write_onnx
from airender.export.pack import write_pack
from airender.export.view import add_view_arguments, cmd_view
from airender.export.web import write_program
from airender.export.web.tiled import program_of
from airender.export.wgsl import write_wgsl
from airender.models import load_model
from airender.sizes import raw_frames_bytes, size_report

FORMATS = ("pack", "onnx", "glsl", "wgsl", "html", "level", "contest")
QUANTS = ("fp32", "fp16", "int8")
BETWEEN_EXPORT = ("auto", "model")


def add_export_parser(sub) -> None:
    """Register the ``export`` subcommand on an argparse subparsers object."""
    p = sub.add_parser("export", help="write a checkpoint as a pack (numpy runtime), ONNX, a shader, a web viewer or "
                                      "a contest decoder folder",
                       description="Export a trained field. pack: one .airpack file that airender.runtime decodes "
                                   "with numpy alone; onnx: NAME.onnx (per-frame decoder) and NAME.prepare.onnx "
                                   "(per-pixel values, once per resolution) for onnxruntime; glsl: a GLSL ES 3.0 "
                                   "fragment shader and the textures it reads; wgsl: a WebGPU compute shader and "
                                   "the storage buffers it reads; html: a static viewer page (OUT/index.html) that "
                                   "decodes on the GPU with WebGL2; level: a static page of the baked level in 3D "
                                   "(three.js) lit by the model, with --data_dir the bake; contest: a folder whose "
                                   "Interface.py answers "
                                   "reconstruct(dataset, lightmap_id, coords) with numpy alone for every lightmap "
                                   "given (one --ckpt per lightmap), with a self-check script.")
    add_ckpt_argument(p, "checkpoint (best.ckpt or last.ckpt); repeat it for --format contest, one per lightmap",
                      repeat=True)
    p.add_argument("--format", default="pack", help=f"one of {', '.join(FORMATS)} (default: pack)")
    p.add_argument("--out", required=True, help="output file (pack, onnx) or folder (glsl, wgsl, html, level, contest)")
    p.add_argument("--quant", default="fp32",
                   help="precision of the stored data: fp32, fp16 or int8 (int8: per-level scales for hash-grid "
                        "tables, per-output-channel scales for weights) for pack, the packs of contest, and the "
                        "textures / buffers of glsl, html, level and wgsl (the shaders decode what the pack of that "
                        "precision decodes); onnx: fp32 only (default: fp32)")
    add_data_dir_argument(p, "--format contest: the lightmap dataset (either contest layout) the checkpoints were "
                             "trained on; --format level: the bake (airender bake --out_dir, with its level.glb) "
                             "(default: none)", required=False)
    p.add_argument("--between", choices=BETWEEN_EXPORT, default="auto",
                   help="frames between the trained hours: 'auto' (default): a run that fitted the network between "
                        "the hours (--between_steps, the quality preset; between.pt beside --ckpt) ships it in "
                        "every export (pack, ONNX as NAME.between.onnx, contest, and extra shader passes in glsl, "
                        "wgsl and html), which then decode what airender render --between auto decodes; 'model': "
                        "leave it out")
    p.add_argument("--lightmap_ids", nargs="+", default=[], metavar="ID",
                   help="--format contest: the lightmap (ID or LEVEL:ID) of each --ckpt, in order (default: the "
                        "lightmap each checkpoint's data description names)")
    p.set_defaults(func=cmd_export)


def check_writable(path: Path, folder: bool) -> None:
    """InputError unless ``path`` can be created or replaced (as a file, or as a folder when ``folder``)."""
    if path.exists():
        if folder and not path.is_dir():
            raise InputError(f"{path}: exists and is not a folder")
        if not folder and path.is_dir():
            raise InputError(f"{path}: is a folder; give a file name")
        target = path if folder else path.parent
    else:
        target = path.parent
        while not target.exists():
            if target == target.parent:
                break
            target = target.parent
        if not target.is_dir():
            raise InputError(f"{path}: cannot be created ({target} is not a folder)")
    if not os.access(target, os.W_OK | os.X_OK):
        raise InputError(f"{path}: cannot write there (no write permission for {target})")


def cmd_export(args: argparse.Namespace) -> int:
    fmt, quant, out = args.format, args.quant, Path(args.out)
    ckpts = args.ckpt if isinstance(args.ckpt, list) else [args.ckpt]
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt}: not an export format (choose from {', '.join(FORMATS)})")
    if quant not in QUANTS:
        raise InputError(f"--quant {quant}: not a precision (choose from {', '.join(QUANTS)})")
    if fmt == "onnx" and quant != "fp32":
        raise InputError(f"--quant {quant}: --format onnx is float32 only (reduced precision: --format pack, "
                         f"contest, glsl, wgsl, html)")
    if fmt == "contest":
        return _export_contest(args, ckpts, out)
    if len(ckpts) > 1:
        raise InputError(f"--ckpt: --format {fmt} exports one checkpoint ({len(ckpts)} given; several are for "
                         f"--format contest)")
    if args.lightmap_ids:
        raise InputError("--lightmap_ids: only --format contest takes it")
    if fmt == "level" and not args.data_dir:
        raise InputError("--data_dir: --format level needs the bake (airender bake --out_dir) the checkpoint was "
                         "trained on")
    if args.data_dir and fmt != "level":
        raise InputError("--data_dir: only --format contest and level take it")
    folder = fmt in ("glsl", "wgsl", "html", "level")
    check_writable(out, folder)
    if fmt == "onnx":
        check_writable(prepare_path(out), False)

    loaded = load_model(ckpts[0], "cpu")
    if loaded.is_tiled and fmt not in ("glsl", "html", "level"):  # these hold every tile's field in one shader
        raise InputError(f"{ckpts[0]}: a tiled checkpoint (one field per tile); --format {fmt} exports one field, "
                         f"a tiled run exports with --format contest --data_dir DATASET, level, glsl or html")
    if loaded.is_pack:
        raise InputError(f"{ckpts[0]}: an exported pack; --format {fmt} exports a checkpoint (give the run's "
                         f"last.ckpt)")
    field = loaded.field
    between = run_network(ckpts[0], loaded.config) if args.between == "auto" else None
    try:
        if fmt == "pack":
            size = size_report(write_pack(field, out, quant, between),
                               raw_frames_bytes(loaded.desc.height, loaded.desc.width))
            carried = "; with the network between the hours" if between is not None else ""
            print(f"wrote {out} ({size['model_bytes']:,} bytes, {quant}; {size['percent_of_raw']:.2f} % of the raw "
                  f"float32 frames{carried})")
        elif fmt == "onnx":
            written = write_onnx(field, out, between)
            print(f"wrote {written[0]} ({written[0].stat().st_size:,} bytes, per-frame decoder) and {written[1]} "
                  f"({written[1].stat().st_size:,} bytes, per-pixel values)"
                  + (f" and {written[2]} ({written[2].stat().st_size:,} bytes, the network between the hours)"
                     if len(written) > 2 else ""))
        elif fmt == "level":
            written, nbytes = write_level_page(field, args.data_dir, out, quant, between)
            print(f"wrote {out}/ (index.html and {len(written) - 1} more files; {quant} model data: {nbytes:,} bytes); "
                  f"open {out / 'index.html'} in a browser with WebGL2")
        elif fmt == "wgsl":
            written = write_wgsl(field, out, quant, between)
            print(f"wrote {', '.join(str(p) for p in written)} ({quant} data: {written[1].stat().st_size:,} bytes "
                  f"in {written[1].name})")
        else:
            written, nbytes = write_program(program_of(field, quant, between), out, fmt)
            where = "textures.bin" if fmt == "glsl" else "the textures of model.js, before base64"
            print(f"wrote {', '.join(str(p) for p in written)} ({quant} data: {nbytes:,} bytes, {where})")
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    return 0


def _export_contest(args: argparse.Namespace, ckpts: list[str], out: Path) -> int:
    if not args.data_dir:
        raise InputError("--data_dir: --format contest needs the lightmap dataset the checkpoints belong to")
    check_writable(out, True)
    try:
        index = write_contest(ckpts, args.data_dir, out, args.lightmap_ids or None, args.quant, args.between)
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    names = ", ".join(f"{e['level']}:{e['id']}" if e["level"] else str(e["id"]) for e in index["lightmaps"])
    total = sum(e["bytes"] for e in index["lightmaps"])
    print(f"wrote {out}/ (Interface.py, selfcheck.py, lightmaps {names}: {total:,} pack bytes, {args.quant}, "
          f"{index['layout']} layout)")
    if index["not_exported"]:
        print(f"note: no checkpoint for lightmaps {', '.join(index['not_exported'])} of {args.data_dir}")
    print(f"check it: python {out / 'selfcheck.py'} --data_dir {args.data_dir}")
    return 0


VIEW_USAGE = "airender view --ckpt C [--port P] [--truth DIR] [--lightmap_id ID]"


def add_view_parser(sub) -> None:
    """Register the ``view`` subcommand: the html export served on 127.0.0.1 (airender.export.view)."""
    p = add_subcommand(sub, "view", "serve the WebGL2 viewer of a checkpoint on 127.0.0.1 (with --truth: beside the "
                                    "ground truth and an error view)", VIEW_USAGE)
    add_view_arguments(p)
    p.set_defaults(func=cmd_view)
