"""``airender view``: the viewer page served on 127.0.0.1 in a subprocess, fetched with urllib, stopped with
Ctrl-C (SIGINT); with --truth the page compares the model with the ground truth (in headless Chromium,
where one starts)."""
from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.request

import numpy as np
import pytest

from airender.errors import InputError
from airender.export.cli import add_view_parser
from airender.images import preview_uint8
from tests.conftest import REPO
from tests.export.conftest import HEIGHT, WIDTH
from tests.export.test_web import browser  # noqa: F401 (the module's WebGL2 browser fixture)

RUNNER = ("import argparse, sys\n"
          "from airender.errors import InputError\n"
          "from airender.export.cli import add_view_parser\n"
          "parser = argparse.ArgumentParser(prog='airender')\n"
          "add_view_parser(parser.add_subparsers(dest='command', required=True))\n"
          "args = parser.parse_args(sys.argv[1:])\n"
          "try:\n"
          "    sys.exit(args.func(args))\n"
          "except InputError as exc:\n"
          "    print(f'error: {exc}', file=sys.stderr)\n"
          "    sys.exit(2)\n")


def view_main(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="airender")
    add_view_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["view", *argv])
    return args.func(args)


class Served:
    """``airender view ARGV`` in a subprocess; ``url`` once it listens; ``stop()`` sends Ctrl-C."""

    def __init__(self, *argv: str):
        self.process = subprocess.Popen([sys.executable, "-c", RUNNER, "view", *argv], cwd=REPO, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ})
        self.lines: list[str] = []
        found = threading.Event()

        def read():
            for line in self.process.stdout:
                self.lines.append(line)
                if "http://" in line:
                    found.set()
            found.set()

        threading.Thread(target=read, daemon=True).start()
        found.wait(timeout=120)
        match = re.search(r"http://127\.0\.0\.1:(\d+)/index\.html", "".join(self.lines))
        if match is None:
            self.process.kill()
            raise AssertionError(f"no URL printed: {self.lines} {self.process.stderr.read()}")
        self.url, self.port = match.group(0), int(match.group(1))

    def fetch(self, name: str) -> bytes:
        with urllib.request.urlopen(self.url.replace("index.html", name), timeout=30) as response:
            assert response.status == 200
            return response.read()

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=60)
        return code, "".join(self.lines)


def test_view_serves_the_page_until_ctrl_c(trained, export_data):
    served = Served("--ckpt", str(trained("quality_switch")), "--port", "0", "--truth", str(export_data["ldr"]))
    try:
        assert served.port > 0
        page = served.fetch("index.html").decode()
        assert '<script src="truth.js"></script>' in page and '<script src="model.js"></script>' in page
        assert served.fetch("model.js").startswith(b"window.AIRENDER_MODEL = ")
        assert served.fetch("truth.js").startswith(b"window.AIRENDER_TRUTH = ")
        assert b"airenderViewer" in served.fetch("viewer.js")
    finally:
        code, output = served.stop()
    assert code == 0 and "stopped" in output
    with pytest.raises(OSError):  # nothing listens any more
        urllib.request.urlopen(served.url, timeout=5)


def test_view_without_truth(trained):
    served = Served("--ckpt", str(trained("hashgrid")))
    try:
        assert "truth.js" not in served.fetch("index.html").decode()
    finally:
        assert served.stop()[0] == 0


def test_view_shows_truth_and_error(trained, export_data, browser):  # noqa: F811
    from airender.data import load_sequence

    served = Served("--ckpt", str(trained("quality_switch")), "--truth", str(export_data["ldr"]))
    page = browser.new_page()
    try:
        page.goto(served.url)
        page.evaluate("() => window.airenderViewer.ready")
        assert page.is_visible("#truth") and page.is_visible("#error")
        truth = load_sequence(export_data["ldr"])
        for hour in (6.0, 18.0):
            page.evaluate(f"() => window.airenderViewer.setHour({hour})")
            comparison = page.evaluate("() => window.airenderViewer.comparison")
            assert comparison["truthHour"] == hour
            shown = page.evaluate("() => window.airenderViewer.readPixels().then(r => Array.from(r.data))")
            pixels = np.array(shown, np.uint8).reshape(HEIGHT, WIDTH, 4)[..., :3].astype(np.float64)
            reference = preview_uint8(truth.frames[truth.time_list().index(hour)], False).astype(np.float64)
            expected = 10 * np.log10(255.0 ** 2 / np.mean((pixels - reference) ** 2))
            assert abs(comparison["psnr"] - expected) < 1e-3, (hour, comparison, expected)
            assert "PSNR" in page.inner_text("#truth-status")
        page.evaluate("() => window.airenderViewer.setHour(7.5)")  # between hours: the nearest ground truth
        assert page.evaluate("() => window.airenderViewer.comparison")["truthHour"] in (6.0, 9.0)
        assert "nearest ground truth" in page.inner_text("#truth-status")
    finally:
        page.close()
        served.stop()


@pytest.mark.parametrize("argv, message", [
    (("--port", "70000"), "--port 70000: not a port"),
    (("--truth", "{tmp}/none"), "none: no such folder"),
    (("--truth", "{hdr}"), "frames are|HDR frames"),
    (("--level", "{tmp}"), "not a bake"),
    (("--level", "{tmp}", "--truth", "{hdr}"), "--level and --truth: choose one"),
])
def test_view_bad_input(argv, message, trained, export_data, tmp_path):
    argv = [a.format(tmp=tmp_path, hdr=export_data["hdr"]) for a in argv]
    with pytest.raises(InputError, match=message):
        view_main("--ckpt", str(trained("hashgrid")), *argv)


def test_view_help_names_each_default_once():
    parser = argparse.ArgumentParser(prog="airender")
    sub = parser.add_subparsers(dest="command")
    add_view_parser(sub)
    view = sub.choices["view"]
    assert view.usage.startswith("airender view --ckpt C")
    for action in view._actions:
        if action.option_strings and action.dest != "help" and not action.required:
            assert action.help.count("(default:") == 1, action.dest
