"""``python -m builder`` (and ``torchrun -m builder``) runs the LayerLab CLI."""

import sys

from builder.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
