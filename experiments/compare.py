"""Collect the three experiments into one table and figure. See `--help`."""

import sys

from transformer.experiments.compare import main

if __name__ == "__main__":
    sys.exit(main())
