"""What each of v7's four switches buys, measured on the language model (see `--help`).

The logic lives in transformer.experiments.modern_cli.
"""

import sys

from transformer.experiments.modern_cli import main

if __name__ == "__main__":
    sys.exit(main())
