"""Render every hour from --start_hour to --end_hour (the roadmap's original command).

    python scripts/batch_infer.py --ckpt runs/delta_small/best.ckpt --infer_script scripts/infer.py \
        --output_dir runs/batch_infer --start_hour 0 --end_hour 23

Writes tod_<HH.HH>.png, e.g. tod_07.00.png (.exr for HDR models; zero-padded so names sort by time) and day.gif into --output_dir. ``--infer_script``
is accepted for compatibility: the frames are rendered in this process by the same code as
scripts/infer.py (``airender render``), loading the model once instead of once per hour. Extra flags
(--step, --width, --height, --device, --baseline_path, --format, --gif) are those of ``airender render-all``.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airender.cli import main  # noqa: E402

if __name__ == "__main__":
    compat = argparse.ArgumentParser(add_help=False)
    compat.add_argument("--infer_script", default="")
    known, rest = compat.parse_known_args(sys.argv[1:])
    if known.infer_script and not Path(known.infer_script).is_file():
        print(f"error: {known.infer_script}: --infer_script does not exist", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(["render-all", *rest]))
