"""The pattern experiment against any stage (see `--help`); logic in transformer.experiments."""

import sys

from transformer.experiments.cli import main

if __name__ == "__main__":
    sys.exit(main("pattern"))
