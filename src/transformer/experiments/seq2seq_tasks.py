"""Sequence-to-sequence tasks that code generates: copy, reverse, sort and addition.

Every example is a source and a target over one small vocabulary of digits and markers.
Three splits, disjoint by construction:

* ``train``: sources of the training lengths whose fingerprint (a CRC-32 of the source)
  is not held out;
* ``heldout``: sources of the same lengths whose fingerprint is held out (one in
  ``HELD_OUT_ONE_IN``), so no held-out source is ever trained on;
* ``longer``: sources longer than any in training (length generalisation).

Two layouts feed the two kinds of model. An encoder-decoder reads the source and writes
``BOS target`` -> ``target EOS``. A decoder-only model reads ``source SEP target`` as one
sequence and is scored only where it writes the target and ``EOS``.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from transformer.lm import IGNORE_INDEX

PAD, BOS, EOS, SEP, PLUS = 0, 1, 2, 3, 4
DIGIT0 = 5  # token of digit d is DIGIT0 + d
VOCAB_SIZE = DIGIT0 + 10
SYMBOLS = {PAD: "_", BOS: "^", EOS: "$", SEP: "|", PLUS: "+"}
HELD_OUT_ONE_IN = 10
SPLITS = ("train", "heldout", "longer")


def show(tokens: list[int]) -> str:
    """Token ids as text: digits, '+', and the markers _ ^ $ |."""
    return "".join(SYMBOLS.get(t, str(t - DIGIT0)) for t in tokens)


def digits_of(tokens: list[int]) -> int:
    return int("".join(str(t - DIGIT0) for t in tokens))


def tokens_of(number: int) -> list[int]:
    return [DIGIT0 + int(c) for c in str(number)]


def held_out(source: list[int]) -> bool:
    """Whether a source belongs to the held-out examples: its CRC-32 fingerprint."""
    return zlib.crc32(bytes(source)) % HELD_OUT_ONE_IN == 0


@dataclass(frozen=True)
class Seq2SeqTask:
    """A task: how a source of a given length is drawn and what its target is.

    ``lengths`` are the training lengths and ``longer`` the held-out longer ones; for
    addition a length is the digit count of the longer operand.
    """

    name: str
    description: str
    target: Callable[[list[int]], list[int]]
    lengths: tuple[int, int]  # inclusive range seen in training
    longer: tuple[int, int]  # inclusive range never seen in training
    addition: bool = False

    def draw_source(self, length: int, generator: torch.Generator) -> list[int]:
        """One source of ``length``: random digits, or two numbers joined by '+'."""
        if not self.addition:
            return (torch.randint(0, 10, (length,), generator=generator) + DIGIT0).tolist()
        other = int(torch.randint(1, length + 1, (1,), generator=generator))
        sizes = (
            [length, other] if bool(torch.rand(1, generator=generator) < 0.5) else [other, length]
        )
        numbers = [self._number(size, generator) for size in sizes]
        return [*tokens_of(numbers[0]), PLUS, *tokens_of(numbers[1])]

    @staticmethod
    def _number(size: int, generator: torch.Generator) -> int:
        low = 0 if size == 1 else 10 ** (size - 1)  # no leading zeros
        return int(torch.randint(low, 10**size, (1,), generator=generator))

    def max_source_len(self) -> int:
        top = self.longer[1]
        return 2 * top + 1 if self.addition else top

    def max_target_len(self) -> int:
        top = self.longer[1]
        return top + 1 if self.addition else top

    def examples(self, n: int, split: str, generator: torch.Generator) -> list[tuple[list, list]]:
        """``n`` (source, target) pairs of ``split``, lengths uniform over its range."""
        if split not in SPLITS:
            raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
        low, high = self.longer if split == "longer" else self.lengths
        pairs = []
        while len(pairs) < n:
            length = int(torch.randint(low, high + 1, (1,), generator=generator))
            source = self.draw_source(length, generator)
            if split == "longer" or held_out(source) == (split == "heldout"):
                pairs.append((source, self.target(source)))
        return pairs


def _add(source: list[int]) -> list[int]:
    cut = source.index(PLUS)
    return tokens_of(digits_of(source[:cut]) + digits_of(source[cut + 1 :]))


TASKS: dict[str, Seq2SeqTask] = {
    task.name: task
    for task in (
        Seq2SeqTask("copy", "write the source again", list, (1, 8), (9, 10)),
        Seq2SeqTask("reverse", "write the source backwards", lambda s: s[::-1], (1, 8), (9, 10)),
        Seq2SeqTask(
            "sort", "write the source's digits in ascending order", sorted, (1, 8), (9, 10)
        ),
        Seq2SeqTask(
            "add", "write the sum of two numbers of up to 4 digits", _add, (1, 4), (5, 5), True
        ),
    )
}


def pad_rows(rows: list[list[int]], value: int) -> Tensor:
    """Rows of ids padded on the right to one length: (len(rows), longest)."""
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])  # (N, width)


def encoder_decoder_batch(pairs: list[tuple[list, list]]) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """((source (N, S), decoder input BOS+target (N, T+1)), targets target+EOS (N, T+1))."""
    src = pad_rows([s for s, _ in pairs], PAD)  # (N, S)
    tgt_in = pad_rows([[BOS, *t] for _, t in pairs], PAD)  # (N, T+1)
    targets = pad_rows([[*t, EOS] for _, t in pairs], IGNORE_INDEX)  # (N, T+1)
    return (src, tgt_in), targets


def decoder_only_batch(pairs: list[tuple[list, list]]) -> tuple[Tensor, Tensor]:
    """(inputs source+SEP+target (N, L), targets shifted by one, scored on target+EOS)."""
    sequences = [[*s, SEP, *t, EOS] for s, t in pairs]
    inputs = pad_rows([seq[:-1] for seq in sequences], PAD)  # (N, L)
    targets = pad_rows(
        [[IGNORE_INDEX] * len(s) + [*t, EOS] for s, t in pairs], IGNORE_INDEX
    )  # (N, L): position len(s) holds SEP and predicts the first target token
    return inputs, targets


def sampler(task: Seq2SeqTask, split: str, layout: Callable):
    """The training loop's view of a task: (n, generator) -> (inputs, targets)."""

    def sample(n: int, generator: torch.Generator):
        return layout(task.examples(n, split, generator))

    return sample
