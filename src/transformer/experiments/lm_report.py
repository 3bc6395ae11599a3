"""What the language-model experiment measures, draws and prints once training is done."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from transformer.experiments import viewer  # noqa: E402
from transformer.experiments.heads import head_scores  # noqa: E402
from transformer.experiments.plots import QUICK_NOTE  # noqa: E402
from transformer.experiments.runner import rounded  # noqa: E402
from transformer.inspect import run_with_cache  # noqa: E402
from transformer.io import write_figure, write_json  # noqa: E402
from transformer.lm import (  # noqa: E402
    VOCAB_SIZE,
    Corpus,
    TrainConfig,
    TrainResult,
    generate,
    next_token_loss,
    unigram_baseline,
)

FIGURES = ("loss_curves.png", "lr_schedule.png")
EXAMPLE_BYTES = 48  # the start of val, drawn by attention.html
SCORED_WINDOWS = 16  # val windows of block_size bytes that the head scores average over
SHOWN = {ord(" "): "␣", ord("\n"): "⏎", ord("\t"): "⇥"}
PROMPTS = ("def ", "class ", "import ")
SAMPLE_TOKENS = 300
SAMPLE_TEMPERATURE = 0.8
CURVE_POINTS = 200  # per-step curves are thinned to about this many points in results.json
LN2 = math.log(2)


@torch.no_grad()
def full_loss(model: nn.Module, data: Tensor, block_size: int, batch_size: int) -> float:
    """Mean loss over every byte of ``data`` (N,), cut into back-to-back windows (dropout off).

    Each byte after the first of a window is predicted once, from the bytes before it in its
    window; a trailing part shorter than a window is left out.
    """
    device = next(model.parameters()).device
    windows = (data.numel() - 1) // block_size
    inputs = data[: windows * block_size].view(windows, block_size)  # (W, T)
    targets = data[1 : windows * block_size + 1].view(windows, block_size)  # (W, T)
    model.eval()
    total = 0.0
    for start in range(0, windows, batch_size):
        x = inputs[start : start + batch_size].long().to(device)  # (b, T)
        y = targets[start : start + batch_size].long().to(device)  # (b, T)
        total += next_token_loss(model(x), y).item() * x.shape[0]  # model(x): (b, T, V)
    return total / windows


def text_of(ids: list[int]) -> str:
    return bytes(ids).decode("ascii", errors="replace")


@torch.no_grad()
def samples(model: nn.Module, seed: int, max_new_tokens: int) -> list[dict]:
    """One sampled (temperature 0.8) and one greedy continuation of each prompt."""
    device = next(model.parameters()).device
    model.eval()
    found = []
    for temperature in (SAMPLE_TEMPERATURE, 0.0):
        generator = torch.Generator(device=device).manual_seed(seed)
        for prompt in PROMPTS:
            idx = torch.tensor([list(prompt.encode("ascii"))], device=device)  # (1, P)
            out = generate(model, idx, max_new_tokens, temperature=temperature, generator=generator)
            found.append(
                {"prompt": prompt, "temperature": temperature, "text": text_of(out[0].tolist())}
            )  # out: (1, P + max_new_tokens)
    return found


def thinned(values: list[float]) -> dict:
    every = max(1, math.ceil(len(values) / CURVE_POINTS))
    return {"every": every, "values": rounded(values[::every])}


def measure(
    model: nn.Module,
    corpus: Corpus,
    block_size: int,
    config: TrainConfig,
    result: TrainResult,
    seed: int,
) -> dict:
    """Baselines, final losses (bits per character on all of val), curves and samples."""
    unigram = unigram_baseline(corpus.train, corpus.val)
    history = result.history
    last = history.evals[-1]
    val_loss = full_loss(model, corpus.val, block_size, config.batch_size)
    tail = history.train_loss[-min(50, len(history.train_loss)) :]
    max_new = 60 if config.steps < 100 else SAMPLE_TOKENS
    return {
        "steps_done": result.step,
        "baselines": {
            "unigram_nats": rounded(unigram["nats"]),
            "unigram_bits_per_char": rounded(unigram["bits"]),
            "uniform_nats": rounded(math.log(VOCAB_SIZE)),
            "uniform_bits_per_char": rounded(math.log2(VOCAB_SIZE)),
        },
        "final": {
            "val_loss": rounded(val_loss),
            "val_bits_per_char": rounded(val_loss / LN2),
            "eval_train_loss": rounded(last["train_loss"]),
            "eval_val_loss": rounded(last["val_loss"]),
            "train_loss_last_steps": rounded(sum(tail) / max(1, len(tail))),
        },
        "curves": {
            "eval_steps": [e["step"] for e in history.evals],
            "eval_train_loss": rounded([e["train_loss"] for e in history.evals]),
            "eval_val_loss": rounded([e["val_loss"] for e in history.evals]),
            "train_loss": thinned(history.train_loss),
            "grad_norm": thinned(history.grad_norm),
            "lr": thinned(history.lr),
        },
        "samples": samples(model, seed, max_new),
        "attention": attention_section(model, corpus, block_size, seed),
    }


def byte_label(value: int) -> str:
    """A byte as one visible character (space, newline and tab as symbols, others escaped)."""
    if value in SHOWN:
        return SHOWN[value]
    return chr(value) if 32 < value < 127 else f"\\x{value:02x}"


def attention_section(model: nn.Module, corpus: Corpus, block_size: int, seed: int) -> dict:
    """The start of val with every layer's and head's weights (what attention.html draws),
    and the four head scores over the first ``SCORED_WINDOWS`` windows of val."""
    device = next(model.parameters()).device
    shown = corpus.val[: min(EXAMPLE_BYTES, block_size)].long().unsqueeze(0).to(device)  # (1, T)
    windows = min(SCORED_WINDOWS, corpus.val.numel() // block_size)
    scored = corpus.val[: windows * block_size].long().view(windows, block_size).to(device)
    scores = head_scores(model, scored, VOCAB_SIZE, seed)
    patterns = run_with_cache(model, shown).patterns  # L x (1, H, T, T)
    return {
        "tokens": [byte_label(int(b)) for b in shown[0]],
        "attention": [rounded(w[0].tolist()) for w in patterns],
        "scores": {name: rounded(table.tolist()) for name, table in scores.items()},
    }


def quick_note(results: dict) -> str:
    return QUICK_NOTE if results.get("quick") else ""


def draw_losses(path: Path, results: dict) -> None:
    curves, base = results["curves"], results["baselines"]
    train = curves["train_loss"]
    fig, ax = plt.subplots(figsize=(6, 3.6))
    steps = [1 + i * train["every"] for i in range(len(train["values"]))]
    ax.plot(steps, train["values"], linewidth=0.6, alpha=0.5, label="train (each step)")
    ax.plot(curves["eval_steps"], curves["eval_train_loss"], "o-", ms=3, label="train (eval)")
    ax.plot(curves["eval_steps"], curves["eval_val_loss"], "o-", ms=3, label="val (eval)")
    ax.axhline(
        base["unigram_nats"],
        color="black",
        linestyle="--",
        linewidth=0.8,
        label=f"unigram baseline ({base['unigram_nats']:.2f} nats/byte)",
    )
    ax.set_ylim(0, base["uniform_nats"] * 1.05)
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats per byte)")
    nats = results["final"]["val_loss"]  # one unit on the axis and in the title
    title = f"{results['version']} on the Python standard library: val {nats:.3f} nats/byte"
    ax.set_title(title + quick_note(results), fontsize=10)
    ax.legend(fontsize=8)
    write_figure(path, fig)
    plt.close(fig)


def draw_schedule(path: Path, results: dict) -> None:
    lr, norm = results["curves"]["lr"], results["curves"]["grad_norm"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    steps = [1 + i * lr["every"] for i in range(len(lr["values"]))]
    ax.plot(steps, lr["values"], color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate", color="tab:blue")
    right = ax.twinx()
    right.plot(steps, norm["values"], color="tab:orange", linewidth=0.6)
    clip = results["training"]["grad_clip"]
    if clip is not None:
        right.axhline(clip, color="tab:orange", linestyle=":", linewidth=0.8)
    right.set_ylabel("gradient norm before clipping (dotted: clip)", color="tab:orange")
    ax.set_title("Warmup, then cosine decay to the floor" + quick_note(results), fontsize=10)
    write_figure(path, fig)
    plt.close(fig)


def save(results: dict, out: Path) -> Path:
    """Write the figures, then results.json (so a results.json always has its figures)."""
    draw_losses(out / FIGURES[0], results)
    draw_schedule(out / FIGURES[1], results)
    shown = results["attention"]
    viewer.write_page(
        out / viewer.PAGE, f"{results['version']} language model: attention on the start of val"
        + quick_note(results), shown["tokens"], shown["attention"], scores=shown["scores"],
        caption="The first bytes of the held-out files; the scores are over "
        f"{SCORED_WINDOWS} windows of them (induction: on repeated random bytes).",
    )  # fmt: skip
    path = out / "results.json"
    write_json(path, results | {"files": [*FIGURES, viewer.PAGE, "checkpoint.safetensors"]})
    return path


def summary(results: dict) -> str:
    final, base = results["final"], results["baselines"]
    lines = [
        f"val loss {final['val_loss']:.4f} nats = {final['val_bits_per_char']:.3f} bits/char "
        f"(all of val); last eval: train {final['eval_train_loss']:.4f}, "
        f"val {final['eval_val_loss']:.4f}",
        f"unigram baseline {base['unigram_nats']:.4f} nats = "
        f"{base['unigram_bits_per_char']:.3f} bits/char; uniform {base['uniform_nats']:.4f} "
        f"nats = 8 bits/char",
    ]
    for sample in results["samples"]:
        lines += [
            f"--- sample (prompt {sample['prompt']!r}, T={sample['temperature']}) ---",
            sample["text"],
        ]
    return "\n".join(lines)
