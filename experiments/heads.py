"""What the heads learned (see `--help`); logic in transformer.experiments.heads_cli."""

import sys

from transformer.experiments.heads_cli import main

if __name__ == "__main__":
    sys.exit(main())
