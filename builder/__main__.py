"""``python -m builder`` (and ``torchrun -m builder``) runs the LayerLab CLI."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
