"""`python export.py RUN --out DIR [options]` is `landmark export RUN --out DIR [options]` (see `landmark export --help`)."""

import sys

from landmark_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["export", *sys.argv[1:]]))
