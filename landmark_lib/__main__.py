"""`python -m landmark_lib ...` is `landmark ...`, for a checkout that was not installed with pip."""

import sys

from .cli import main

sys.exit(main())
