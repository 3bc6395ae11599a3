"""Train v5's GPT on the Python standard library, bytewise (see `--help`).

The logic lives in transformer.experiments.language_model.
"""

import sys

from transformer.experiments.language_model import main

if __name__ == "__main__":
    sys.exit(main())
