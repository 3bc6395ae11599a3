"""Writing a target with a trained encoder-decoder: greedy decoding and beam search.

Both encode the source once and then run the decoder on the growing target, starting
from ``bos_id``, until ``eos_id`` or ``max_new_tokens``. (Each step reruns the decoder over
the whole prefix; caching keys and values is v8's idea.)

A hypothesis y_1..y_n is scored by its log-probability divided by the length penalty of
Wu et al. (2016), ``lp(n) = ((5 + n) / 6) ** length_penalty``, where n counts ``eos_id``
when the hypothesis ended with it. ``length_penalty=0`` scores by log-probability alone;
larger values favour longer outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from transformer._checks import check_number, check_positive_int, check_rank, check_tensor


@dataclass(frozen=True)
class Hypothesis:
    """A decoded target (ids without ``bos_id`` and ``eos_id``), whether it ended with
    ``eos_id``, its summed log-probability and its length-penalised score."""

    tokens: list[int]
    finished: bool
    log_prob: float
    score: float


def length_penalty_factor(length: int, length_penalty: float) -> float:
    """``((5 + length) / 6) ** length_penalty``, the divisor of a hypothesis' log-probability."""
    return ((5 + length) / 6) ** length_penalty


def _check(
    model, src: Tensor, bos_id: int, eos_id: int, max_new_tokens: int, length_penalty: float
) -> None:
    check_tensor("src", src)
    check_rank("src", src, (2,), "of token ids (batch, src_len)")
    vocab = model.config.vocab_size
    for name, value in (("bos_id", bos_id), ("eos_id", eos_id)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab:
            raise ValueError(
                f"{name}: expected a token id in [0, vocab_size={vocab}), got {value!r}"
            )
    check_positive_int("max_new_tokens", max_new_tokens)
    check_number("length_penalty", length_penalty, 0.0)


def _step_log_probs(model, memory: Tensor, padding: Tensor | None, prefix: Tensor) -> Tensor:
    """log p(next | prefix, source) for every row: prefix (B, t) -> (B, vocab)."""
    logits = model.decode(memory, padding, prefix)[:, -1]  # (B, vocab)
    return torch.log_softmax(logits.float(), dim=-1)  # (B, vocab)


@torch.no_grad()
def greedy_decode(
    model, src: Tensor, *, bos_id: int, eos_id: int, max_new_tokens: int
) -> list[list[int]]:
    """The most likely next token at every step, for each source row: src (B, S) -> B lists
    of ids (without ``bos_id``; stopped before ``eos_id``)."""
    _check(model, src, bos_id, eos_id, max_new_tokens, 0.0)
    memory, padding = model.encode(src)  # (B, S, d_model)
    prefix = src.new_full((src.shape[0], 1), bos_id)  # (B, 1)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)  # (B,)
    outputs: list[list[int]] = [[] for _ in range(src.shape[0])]
    for _ in range(max_new_tokens):
        chosen = _step_log_probs(model, memory, padding, prefix).argmax(dim=-1)  # (B,)
        for row, token in enumerate(chosen.tolist()):
            if not done[row] and token != eos_id:
                outputs[row].append(token)
        done |= chosen == eos_id
        if bool(done.all()):
            break
        prefix = torch.cat([prefix, chosen.unsqueeze(1)], dim=1)  # (B, t + 1)
    return outputs


@torch.no_grad()
def score_target(
    model, src: Tensor, tokens: list[int], *, bos_id: int, eos_id: int, finished: bool,
    length_penalty: float = 0.0,
) -> Hypothesis:  # fmt: skip
    """Teacher-forced score of ``tokens`` (and ``eos_id`` if ``finished``) for one source
    src (1, S): the number beam search ranks hypotheses by."""
    _check(model, src, bos_id, eos_id, 1, length_penalty)
    targets = [*tokens, eos_id] if finished else list(tokens)
    if not targets:
        return Hypothesis([], False, 0.0, 0.0)
    prefix = torch.tensor([[bos_id, *targets[:-1]]], device=src.device)  # (1, n)
    memory, padding = model.encode(src)
    logits = model.decode(memory, padding, prefix)[0]  # (n, vocab)
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (n, vocab)
    picked = log_probs[torch.arange(len(targets)), torch.tensor(targets, device=src.device)]
    total = float(picked.sum())
    return Hypothesis(
        list(tokens), finished, total, total / length_penalty_factor(len(targets), length_penalty)
    )


@torch.no_grad()
def beam_search(
    model, src: Tensor, *, bos_id: int, eos_id: int, max_new_tokens: int, beam_size: int = 4,
    length_penalty: float = 0.6,
) -> Hypothesis:  # fmt: skip
    """The best-scoring target found for one source src (1, S), keeping ``beam_size``
    prefixes at each step.

    Each step extends every kept prefix by every token and ranks the extensions by
    log-probability. An extension that ends with ``eos_id`` is set aside as finished when it
    ranks among the first ``beam_size`` (lower-ranked endings are dropped, as in fairseq and
    Hugging Face); the ``beam_size`` best that did not end are kept. The search stops once
    ``beam_size`` hypotheses have finished (Hugging Face's ``early_stopping=True``: a kept
    prefix that might still overtake them is not followed) or at ``max_new_tokens``, where
    the unfinished ones compete too. Plain beam search can prune the greedy path, so the
    greedy hypothesis competes as well: the result never scores below it. ``beam_size=1``
    is greedy decoding.
    """
    _check(model, src, bos_id, eos_id, max_new_tokens, length_penalty)
    check_positive_int("beam_size", beam_size)
    if src.shape[0] != 1:
        raise ValueError(f"src: expected one source (1, src_len), got {src.shape[0]} rows")
    memory, padding = model.encode(src)  # (1, S, d_model)
    beams: list[tuple[list[int], float]] = [([], 0.0)]
    ended: list[tuple[list[int], float, bool]] = []
    for _ in range(max_new_tokens):
        prefix = torch.tensor([[bos_id, *tokens] for tokens, _ in beams], device=src.device)
        kept = len(beams)
        log_probs = _step_log_probs(
            model, memory.expand(kept, -1, -1),
            None if padding is None else padding.expand(kept, -1), prefix,
        )  # (k, vocab)  # fmt: skip
        totals = torch.tensor([s for _, s in beams], device=src.device)[:, None] + log_probs
        vocab = totals.shape[1]
        best, index = totals.flatten().topk(min(2 * beam_size, totals.numel()))  # (2k,)
        extended: list[tuple[list[int], float]] = []
        for rank, (total, flat) in enumerate(zip(best.tolist(), index.tolist(), strict=True)):
            beam, token = divmod(flat, vocab)
            if token == eos_id:
                if rank < beam_size:  # an ending that would not be kept is not a hypothesis
                    ended.append((beams[beam][0], total, True))
            else:
                extended.append(([*beams[beam][0], token], total))
            if len(extended) == beam_size:
                break
        beams = extended
        if len(ended) >= beam_size or not beams:
            break
    else:
        ended.extend((tokens, total, False) for tokens, total in beams)
    settings = {"bos_id": bos_id, "eos_id": eos_id, "max_new_tokens": max_new_tokens}
    greedy = greedy_decode(model, src, **settings)[0]
    candidates = [
        Hypothesis(tokens, finished, total,
                   total / length_penalty_factor(len(tokens) + finished, length_penalty))
        for tokens, total, finished in ended
    ]  # fmt: skip
    greedy_finished = len(greedy) < max_new_tokens
    candidates.append(
        score_target(
            model, src, greedy, bos_id=bos_id, eos_id=eos_id, finished=greedy_finished,
            length_penalty=length_penalty,
        )
    )  # fmt: skip
    return max(candidates, key=lambda h: h.score)
