"""`accelerate launch train_accelerate.py [options]` (or `python train_accelerate.py`) is `landmark train [options]`.

Accelerate's launcher runs a script in each process, so training keeps this file; see `landmark train --help`.
"""

import sys

from landmark_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
