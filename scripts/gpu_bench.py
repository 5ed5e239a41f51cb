"""The prepared GPU benchmark: 1080p decode of every preset (fp32/fp16, eager/compiled), tile fitting on a
sparse 4096^2 atlas with the whole level's estimate, and the decode of a 16384^2 atlas; medians after warm-up,
CUDA events. Writes gpu_bench.json and gpu_bench.md (see airender/bench/gpu.py).

    python scripts/gpu_bench.py --out gpu_bench            # on a CUDA machine: a few minutes
    python scripts/gpu_bench.py --quick --out /tmp/smoke    # every part small, on any machine
"""
import sys

from airender.bench.gpu import main

if __name__ == "__main__":
    sys.exit(main())
