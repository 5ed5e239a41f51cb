"""Render one time of day from a checkpoint (the roadmap's original command; ``airender render``).

    python scripts/infer.py --ckpt runs/delta_small/best.ckpt --time 18 --out runs/recon_18.png \
        [--baseline_path DATA/tod_12.png]

Without --baseline_path the full-precision baseline kept in the checkpoint is used.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airender.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["render", *sys.argv[1:]]))
