"""Sequence-to-sequence tasks (copy, reverse, sort, addition): the encoder-decoder (v6)
against decoder-only stages of about its size (see `--help`).

The logic lives in transformer.experiments.seq2seq_cli.
"""

import sys

from transformer.experiments.seq2seq_cli import main

if __name__ == "__main__":
    sys.exit(main())
