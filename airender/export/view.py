"""``airender view --ckpt C [--port P] [--truth DIR | --level BAKE]``: the html export of a checkpoint (or with
``--level`` the level page, ``export --format level``), served on 127.0.0.1 (with the run's network between the
hours when it fitted one, as ``export --between auto``).

The page (airender.export.web: WebGL2, decoding on the GPU) is written into a temporary folder and served
by ``http.server`` in a thread until Ctrl-C; the folder is removed on the way out. With ``--truth DIR``
(frames in any layout ``--data_dir`` takes, at the model's size) the page also shows the ground truth at
the nearest of its hours and an error heat map, with the PSNR of the 8-bit display values.
"""
from __future__ import annotations

import argparse
import functools
import http.server
import tempfile
import threading
from pathlib import Path

from airender.between.cli import run_network
from airender.cli_args import add_ckpt_argument, add_lightmap_id_argument
from airender.data import load_sequence
from airender.data.readers import is_contest_layout
from airender.data.virtual_texture import is_virtual_texture
from airender.errors import InputError
from airender.export.contest import lightmap_of_source
from airender.export.level import write_level_page
from airender.export.web import field_program, truth_script, write_html
from airender.images import preview_uint8
from airender.models.checkpoint import load_checkpoint

HOST = "127.0.0.1"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves one folder; no request log on the terminal."""

    def log_message(self, format, *args) -> None:  # noqa: A002 (the base class's name)
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


def start_server(folder: str | Path, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, threading.Thread, str]:
    """Serve ``folder`` on 127.0.0.1:``port`` (0: a free port) from a daemon thread; returns the server, the
    thread and the page's URL. InputError when the port cannot be had."""
    handler = functools.partial(QuietHandler, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        raise InputError(f"--port {port}: cannot listen on {HOST}:{port} ({exc.strerror or exc})") from None
    thread = threading.Thread(target=server.serve_forever, name="airender-view", daemon=True)
    thread.start()
    return server, thread, f"http://{HOST}:{server.server_address[1]}/index.html"


def truth_script_for(truth_dir: str, lightmap_id: str, model, exposure: float) -> str:
    """truth.js of the frames in ``truth_dir`` for the viewer of ``model`` (a runtime FieldModel): every
    frame as the page shows the model (8-bit sRGB; HDR through ``exposure``), and the mask. InputError
    when the frames are not at the model's size or LDR/HDR differs."""
    named = lightmap_of_source(model.header["data"].get("source", ""))
    if not lightmap_id and named is not None and is_contest_layout(truth_dir):
        level, ident = named
        lightmap_id = f"{level}:{ident}" if level and not is_virtual_texture(truth_dir) else str(ident)
    sequence = load_sequence(truth_dir, lightmap_id)
    if (sequence.height, sequence.width) != (model.height, model.width):
        raise InputError(f"{truth_dir}: frames are {sequence.width}x{sequence.height}, the model "
                         f"{model.width}x{model.height}")
    if sequence.is_hdr != model.is_hdr:
        kind = "HDR" if sequence.is_hdr else "LDR"
        raise InputError(f"{truth_dir}: {kind} frames, but the model was trained on {'HDR' if model.is_hdr else 'LDR'}")
    frames = {float(t): preview_uint8(sequence.frames[k], sequence.is_hdr, exposure)
              for k, t in enumerate(sequence.time_list())}
    mask = None if sequence.mask is None else sequence.mask.cpu().numpy().astype(bool)
    return truth_script(frames, mask, sequence.source)


def add_view_arguments(p: argparse.ArgumentParser) -> None:
    add_ckpt_argument(p, "checkpoint (best.ckpt or last.ckpt) to show")
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks a free one (default: 0)")
    p.add_argument("--truth", default="",
                   help="ground-truth frames (any layout --data_dir takes, at the model's size) to show beside the "
                        "model with an error view (default: none)")
    add_lightmap_id_argument(p, "with a contest-layout --truth: which lightmap (default: the one the checkpoint "
                                "was trained on, else the first)")
    p.add_argument("--level", default="",
                   help="a bake (airender bake --out_dir) whose lightmap the checkpoint was trained on: show the level "
                        "in 3D lit by the model instead, as export --format level writes it (default: none: the 2D viewer)")


def cmd_view(args: argparse.Namespace) -> int:
    """Write the page into a temporary folder, serve it until Ctrl-C, then remove the folder."""
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: not a port (0..65535; 0 picks a free one)")
    if args.truth and not Path(args.truth).exists():
        raise InputError(f"{args.truth}: no such folder (--truth)")
    if args.level and args.truth:
        raise InputError("--level and --truth: choose one (the level page shows the bake's own truth)")
    loaded = load_checkpoint(args.ckpt, "cpu")
    between = run_network(args.ckpt, loaded.config)
    with tempfile.TemporaryDirectory(prefix="airender-view-") as folder:
        if args.level:
            write_level_page(loaded.field, args.level, folder, "fp32", between)
        else:
            model, program = field_program(loaded.field, "fp32", between)
            truth = truth_script_for(args.truth, args.lightmap_id, model, program.meta["exposure"]) if args.truth \
                else None
            write_html(program, Path(folder), truth)
        server, thread, url = start_server(folder, args.port)
        print(f"serving {args.ckpt} at {url} (Ctrl-C stops)", flush=True)
        try:
            while thread.is_alive():
                thread.join(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            server.shutdown()
            server.server_close()
    print("stopped", flush=True)
    return 0

