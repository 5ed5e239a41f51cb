"""Pictures and figures of the level page (``airender export --format level``), made by the page itself.

Writes the level page of a checkpoint, opens it in headless Chromium (Playwright; SwiftShader's WebGL2 on the
CPU unless --gpu), and from the default camera at each hour: saves the "neural" frame into one picture (the
hours side by side, with their times), and reports the PSNR of "neural" against "baked truth" over the level's
pixels on the 8-bit output and the page's frame time at that hour (median of --repeats frames after the first).

    python scripts/level_pictures.py --ckpt runs/level/last.ckpt --bake runs/bake --out docs/images/level.png
"""
from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from airender.between.cli import run_network
from airender.export.level import write_level_page
from airender.models import load_model

CHROMIUM = "/usr/bin/chromium"
SWIFTSHADER = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-sandbox", "--headless"]
READ = """() => window.airenderLevel.readPixels().then(r => {
  let s = ""; for (let i = 0; i < r.data.length; i += 0x8000) s += String.fromCharCode.apply(null, r.data.subarray(i, i + 0x8000));
  return {w: r.width, h: r.height, data: btoa(s)};
})"""


def grab(page) -> np.ndarray:
    shown = page.evaluate(READ)
    return np.frombuffer(base64.b64decode(shown["data"]), np.uint8).reshape(shown["h"], shown["w"], 4)


def psnr8(a: np.ndarray, b: np.ndarray) -> float:
    covered = (a[..., 3] > 0) & (b[..., 3] > 0)
    mse = ((a[..., :3].astype(np.float64) - b[..., :3]) ** 2)[covered].mean()
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt", required=True)
    p.add_argument("--bake", required=True, help="the bake the checkpoint was trained on")
    p.add_argument("--out", required=True, help="the picture (PNG)")
    p.add_argument("--hours", default="8,13,18.5", help="hours, comma-separated (default: 8,13,18.5)")
    p.add_argument("--size", default="480x300", help="the page's canvas, WxH (default: 480x300)")
    p.add_argument("--repeats", type=int, default=5, help="frames timed per hour (default: 5)")
    p.add_argument("--gpu", action="store_true", help="Chromium's own GPU instead of SwiftShader")
    args = p.parse_args(argv)
    from playwright.sync_api import sync_playwright

    hours = [float(h) for h in args.hours.split(",")]
    loaded = load_model(args.ckpt, "cpu")
    shots, rows = [], []
    with tempfile.TemporaryDirectory(prefix="airender-level-") as folder:
        between = None if loaded.is_tiled else run_network(args.ckpt, loaded.config)
        write_level_page(loaded.field, args.bake, folder, "fp32", between)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=["--headless", "--no-sandbox"] if args.gpu else SWIFTSHADER)
            page = browser.new_page()
            page.goto((Path(folder) / "index.html").as_uri() + f"?size={args.size}")
            page.evaluate("() => window.airenderLevel.ready")
            for hour in hours:
                page.evaluate("() => window.airenderLevel.setMode('truth')")
                page.evaluate(f"() => window.airenderLevel.setHour({hour})")
                truth = grab(page)
                page.evaluate("() => window.airenderLevel.setMode('neural')")
                times = []
                for _ in range(args.repeats + 1):  # the first frame of a time between the hours runs the network
                    page.evaluate(f"() => window.airenderLevel.setHour({hour})")
                    times.append(page.evaluate("() => window.airenderLevel.frameMs"))
                neural = grab(page)
                shots.append(neural)
                rows.append((hour, psnr8(neural, truth), statistics.median(times[1:])))
            browser.close()
    height, width = shots[0].shape[:2]
    picture = Image.new("RGB", (width * len(shots), height + 22), (29, 31, 33))
    draw = ImageDraw.Draw(picture)
    for k, (shot, (hour, _, _)) in enumerate(zip(shots, rows)):
        rgb = np.where(shot[..., 3:] > 0, shot[..., :3], np.uint8(16))
        picture.paste(Image.fromarray(rgb), (k * width, 22))
        draw.text((k * width + 6, 5), f"{int(hour):02d}:{round(hour % 1 * 60):02d}  neural", fill=(224, 224, 224))
    picture.save(args.out)
    print(f"wrote {args.out}")
    for hour, psnr, ms in rows:
        print(f"{hour:5.2f} h: neural vs baked truth {psnr:.2f} dB over the level's pixels (8-bit); "
              f"{ms:.0f} ms a frame at {args.size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
