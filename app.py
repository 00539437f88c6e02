"""The Space's entry point (README front matter `app_file`): `python app.py [options]` is `landmark serve [options]`."""

import sys

from landmark_lib.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
