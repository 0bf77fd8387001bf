"""``python -m builder`` (and ``torchrun -m builder``) runs the LayerLab CLI."""

from builder.cli.main import run

if __name__ == "__main__":
    run()
