"""Train a time-of-day field (the roadmap's original command; same flags as ``airender train``).

    python scripts/train.py --data_dir DATA --out_dir runs/delta_small --epochs 20 --batch_size 8192 \
        --hidden 64 --layers 6 --time_harmonics 4 --xy_harmonics 4 --xy_include_input --lr 5e-4 \
        --num_workers 1 --samples_per_epoch 200000 --residual_mode True --baseline_time 12
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from airender.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
