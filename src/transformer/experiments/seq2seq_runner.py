"""One sequence-to-sequence task on one stage: build, train, decode, measure.

v6 is built as the encoder-decoder it is. A decoder-only stage (v5, v7) reads the source as
a prefix, ``source SEP target``, and is built with as many layers as bring its parameter
count closest to v6's, so the comparison is at (nearly) equal size.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor

from transformer.contract import SEQ2SEQ, ModelConfig, get_stage
from transformer.experiments import seq2seq_tasks as tasks
from transformer.experiments.runner import rounded
from transformer.lm import IGNORE_INDEX, TrainConfig, generate, next_token_loss, train
from transformer.lm.training import apply_model, to_device

SIZE = {"d_model": 64, "num_heads": 4, "num_layers": 2}  # v6: 2 encoder + 2 decoder layers
QUICK_SIZE = {"d_model": 16, "num_heads": 2, "num_layers": 1}
MAX_LEN = 32  # covers the longest layout, source SEP target EOS on the longer lengths
MAX_LAYERS = 12  # the deepest decoder-only model tried when matching v6's size
TRAINING = TrainConfig(
    steps=700,
    batch_size=64,
    learning_rate=2e-3,  # the peak, at the end of warmup
    min_learning_rate=0.0,
    warmup_steps=100,
    schedule="inverse_sqrt",  # the paper's
    label_smoothing=0.1,  # the paper's
    weight_decay=0.01,
    beta1=0.9,
    beta2=0.98,  # the paper's
    grad_clip=1.0,
    eval_interval=100,
    eval_batches=2,
)
QUICK_TRAINING = replace(TRAINING, steps=20, batch_size=16, warmup_steps=5, eval_interval=10)
EVAL_EXAMPLES = 300  # per held-out split
QUICK_EVAL_EXAMPLES = 16
BEAM_EXAMPLES = 50  # beam search is run one source at a time, on the first of them
BEAM_SIZE = 4
LENGTH_PENALTY = 0.6
EVAL_SEED_OFFSET = 10_000


def model_config(version: str, size: dict, num_layers: int | None = None) -> ModelConfig:
    """The ModelConfig a stage is built from for these tasks."""
    fields = {**size, "max_len": MAX_LEN}
    if num_layers is not None:
        fields["num_layers"] = num_layers
    if not get_stage(version).encoder_decoder:
        fields["causal"] = True
    return ModelConfig(vocab_size=tasks.VOCAB_SIZE, **fields)


def build(version: str, size: dict, num_layers: int | None = None):
    """The stage's model for these tasks (v6 encoder-decoder, else decoder-only)."""
    stage = get_stage(version)
    stage.require(SEQ2SEQ)
    config = model_config(version, size, num_layers)
    if stage.encoder_decoder:
        return stage.build_seq2seq_model(config)
    return stage.build_model(config)


def count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # a tied matrix counted once


def matched_layers(version: str, size: dict) -> int:
    """For a decoder-only stage, the layer count whose parameters are closest to v6's."""
    target = count(build("v6", size))
    sizes = {n: count(build(version, size, n)) for n in range(1, MAX_LAYERS + 1)}
    return min(sizes, key=lambda n: (abs(sizes[n] - target), n))


@torch.no_grad()
def greedy_targets(model, encoder_decoder: bool, pairs: list, device: torch.device) -> list[list]:
    """Greedy decoding of every pair's target (the ids before the first EOS)."""
    longest = max(len(t) for _, t in pairs) + 2  # room to overrun and then stop
    if encoder_decoder:
        src = tasks.pad_rows([s for s, _ in pairs], tasks.PAD).to(device)  # (N, S)
        return model.greedy_decode(src, bos_id=tasks.BOS, eos_id=tasks.EOS, max_new_tokens=longest)
    outputs: list[list[int] | None] = [None] * len(pairs)
    by_length: dict[int, list[int]] = {}
    for index, (source, _) in enumerate(pairs):  # equal prompts need no padding
        by_length.setdefault(len(source), []).append(index)
    for rows in by_length.values():
        prompt = torch.tensor([[*pairs[i][0], tasks.SEP] for i in rows], device=device)
        written = decoder_only_greedy(model, prompt, longest)
        for i, tokens in zip(rows, written, strict=True):
            outputs[i] = tokens
    return outputs


def decoder_only_greedy(model, prompt: Tensor, max_new_tokens: int) -> list[list[int]]:
    """prompt (N, P) of equal-length ``source SEP`` rows -> each row's ids before EOS, with
    the language models' own greedy loop (``transformer.lm.generate``)."""
    written = generate(model, prompt, max_new_tokens, temperature=0)[:, prompt.shape[1] :]
    rows = written.tolist()  # N lists of max_new_tokens ids
    return [row[: row.index(tasks.EOS)] if tasks.EOS in row else row for row in rows]


@torch.no_grad()
def teacher_forced(model, layout, pairs: list, device: torch.device) -> tuple[float, float]:
    """Held-out loss (nats per target token) and token accuracy with the true prefix."""
    inputs, targets = layout(pairs)
    logits = apply_model(model, to_device(inputs, device))  # (N, T, V)
    targets = targets.to(device)
    scored = targets != IGNORE_INDEX
    correct = (logits.argmax(dim=-1) == targets) & scored
    return next_token_loss(logits, targets).item(), (correct.sum() / scored.sum()).item()


def evaluate(model, encoder_decoder: bool, task, split: str, n: int, seed: int, device) -> dict:
    """Exact match (greedy), token accuracy and loss on ``n`` examples of ``split``."""
    generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET + tasks.SPLITS.index(split))
    pairs = task.examples(n, split, generator)
    layout = tasks.encoder_decoder_batch if encoder_decoder else tasks.decoder_only_batch
    model.eval()
    written = greedy_targets(model, encoder_decoder, pairs, device)
    loss, token_accuracy = teacher_forced(model, layout, pairs, device)
    exact = sum(w == t for w, (_, t) in zip(written, pairs, strict=True)) / len(pairs)
    example = pairs[0]
    return {
        "exact_match": rounded(exact),
        "token_accuracy": rounded(token_accuracy),
        "loss": rounded(loss),
        "examples": len(pairs),
        "example": {
            "source": tasks.show(example[0]),
            "target": tasks.show(example[1]),
            "written": tasks.show(written[0]),
        },
    }


@torch.no_grad()
def beam_against_greedy(model, task, n: int, seed: int, device) -> dict:
    """Exact match of beam search and of greedy decoding (v6) on the same first ``n``
    held-out examples (the first ``n`` of ``evaluate``'s), both allowed the same number of
    new tokens: two more than the longest target among them."""
    generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET + 1)
    pairs = task.examples(n, "heldout", generator)
    greedy = greedy_targets(model, True, pairs, device)
    longest = max(len(t) for _, t in pairs) + 2  # as greedy_targets allows
    hits = 0
    for source, target in pairs:
        found = model.beam_search(
            torch.tensor([source], device=device), bos_id=tasks.BOS, eos_id=tasks.EOS,
            max_new_tokens=longest, beam_size=BEAM_SIZE, length_penalty=LENGTH_PENALTY,
        )  # fmt: skip
        hits += found.tokens == target
    greedy_hits = sum(g == t for g, (_, t) in zip(greedy, pairs, strict=True))
    return {
        "beam_size": BEAM_SIZE,
        "length_penalty": LENGTH_PENALTY,
        "examples": n,
        "heldout_exact_match": rounded(hits / n),
        "greedy_heldout_exact_match": rounded(greedy_hits / n),
    }


def alignment(task_name: str, source: list[int], target: list[int]) -> Tensor | None:
    """(T, S) 0/1: the source positions target position t should read, or None (addition).

    copy reads position t, reverse position S-1-t, sort the positions holding its digit."""
    s, t = len(source), len(target)
    wanted = torch.zeros(t, s)
    for i in range(t):
        if task_name == "copy":
            wanted[i, i] = 1.0
        elif task_name == "reverse":
            wanted[i, s - 1 - i] = 1.0
        elif task_name == "sort":
            wanted[i] = torch.tensor([float(x == target[i]) for x in source])
        else:
            return None
    return wanted


@torch.no_grad()
def cross_attention(model, task, seed: int, device) -> tuple[dict, list[Tensor], tuple]:
    """v6's cross-attention on one held-out example: per layer (H, T+1, S) maps, and the
    mass each head puts on the positions the task says to read (mean over target rows)."""
    generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET + 7)
    source, target = next((s, t) for s, t in task.examples(64, "heldout", generator) if len(s) >= 6)
    (src, tgt_in), _ = tasks.encoder_decoder_batch([(source, target)])
    _, maps = model.forward_with_attention(src.to(device), tgt_in.to(device))
    cross = [m[0].cpu() for m in maps["cross"]]  # per layer (H, T+1, S)
    wanted = alignment(task.name, source, target)  # (T, S) or None
    mass = {}
    if wanted is not None:  # rows 0..T-1 predict target tokens 0..T-1
        for layer, weights in enumerate(cross):
            per_head = (weights[:, : len(target)] * wanted).sum(-1).mean(-1)  # (H,)
            mass[f"layer{layer}"] = rounded(per_head.tolist())
    return mass, cross, (source, target)


@dataclass
class TaskRun:
    result: dict
    losses: list[float] = field(repr=False)
    cross_maps: list[Tensor] | None = field(default=None, repr=False)
    cross_example: tuple | None = field(default=None, repr=False)


def run_task(
    task, version: str, seed: int, config: TrainConfig, device: torch.device, *,
    size: dict, eval_examples: int, beam_examples: int,
) -> TaskRun:  # fmt: skip
    """Train ``version`` on ``task`` from ``seed`` and measure it on both held-out splits."""
    stage = get_stage(version)
    encoder_decoder = stage.encoder_decoder
    layers = None if encoder_decoder else matched_layers(version, size)
    torch.manual_seed(seed)
    model = build(version, size, layers).to(device)
    layout = tasks.encoder_decoder_batch if encoder_decoder else tasks.decoder_only_batch
    generator = torch.Generator().manual_seed(seed)
    trained = train(
        model,
        tasks.sampler(task, "train", layout),
        {"heldout": tasks.sampler(task, "heldout", layout)},
        config,
        generator,
        label=f"{version} {task.name}",
    )
    result = {
        "task": task.name,
        "description": task.description,
        "version": version,
        "seed": seed,
        "layout": "encoder-decoder" if encoder_decoder else "decoder-only (source as prefix)",
        "architecture": stage.architecture(model_config(version, size, layers)),
        "parameters": count(model),
        "train_lengths": list(task.lengths),
        "longer_lengths": list(task.longer),
        "final_train_loss": rounded(trained.history.train_loss[-1]),
        "evals": [
            {k: rounded(v) if k != "step" else v for k, v in e.items()}
            for e in trained.history.evals
        ],  # fmt: skip
        "heldout": evaluate(model, encoder_decoder, task, "heldout", eval_examples, seed, device),
        "longer": evaluate(model, encoder_decoder, task, "longer", eval_examples, seed, device),
        "device": device.type,
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    run = TaskRun(result, trained.history.train_loss)
    if encoder_decoder:
        result["beam"] = beam_against_greedy(model, task, beam_examples, seed, device)
        mass, run.cross_maps, run.cross_example = cross_attention(model, task, seed, device)
        result["cross_attention_alignment_mass"] = mass
    return run
