"""What each of v7's four changes buys: v5, then one switch at a time, then all four.

Every variant is trained the same way on the same standard-library bytes (the language
model's corpus and training loop, a smaller model and budget) for several seeds, and
measured three ways:

* validation bits per character, with its spread over seeds;
* tokens per second of a training step, timed side by side in the same run;
* the key/value cache a generating model would keep per token (2 · layers · kv heads ·
  head_dim · 4 bytes in float32).

Length generalisation: each model, trained on windows of T bytes, is asked for the loss on
windows of 4T. Learned positions have no vector past T, and the model says so (the error is
recorded); RoPE runs, and the loss is reported by position: [0, T), [T, 2T), [2T, 4T).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field, replace

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from transformer.contract import ModelConfig, SequenceModel, get_stage
from transformer.experiments.lm_report import full_loss
from transformer.experiments.runner import rounded
from transformer.lm import VOCAB_SIZE, Corpus, CorpusConfig, TrainConfig, sample_batch, train

LN2 = math.log(2)
SIZE = {"d_model": 64, "num_heads": 4, "num_layers": 2}
BLOCK = 64  # the training context T
LENGTH_FACTOR = 4  # evaluated on windows of LENGTH_FACTOR · T
TRAINING = TrainConfig(steps=600, batch_size=32, warmup_steps=50, eval_interval=600, eval_batches=2)
CORPUS = CorpusConfig(train_bytes=1_000_000, val_bytes=100_000)
TIMED_STEPS = 5  # training steps timed per variant and round (after one untimed step)
TIMING_ROUNDS = 4
QUICK_SIZE = {"d_model": 32, "num_heads": 4, "num_layers": 1}
QUICK_TRAINING = replace(TRAINING, steps=12, batch_size=8, warmup_steps=2, eval_interval=12)
QUICK_CORPUS = CorpusConfig(train_bytes=100_000, val_bytes=20_000)
QUICK_BLOCK = 16
GPT2_SWITCHES = {"positions": "learned", "norm": "layernorm", "mlp": "gelu", "bias": True}


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: a stage and the options that set its switches."""

    name: str
    version: str
    options: dict = field(default_factory=dict)
    changes: str = ""


def variants(num_heads: int) -> list[Variant]:
    """v5; v7 at GPT-2's settings with one switch turned; all four; and v7's defaults."""
    mha = {"num_kv_heads": num_heads}
    gqa = max(1, num_heads // 2)
    gpt2 = GPT2_SWITCHES | mha
    return [
        Variant("v5", "v5", {}, "GPT-2: learned positions, LayerNorm, GELU, multi-head"),
        Variant("+rope", "v7", gpt2 | {"positions": "rope"}, "rotary positions"),
        Variant("+rmsnorm", "v7", gpt2 | {"norm": "rmsnorm"}, "RMSNorm"),
        Variant("+swiglu", "v7", gpt2 | {"mlp": "swiglu"}, "SwiGLU feed-forward"),
        Variant("+gqa", "v7", gpt2 | {"num_kv_heads": gqa}, f"{gqa} key/value heads"),
        Variant(
            "all four",
            "v7",
            {
                "positions": "rope",
                "norm": "rmsnorm",
                "mlp": "swiglu",
                "num_kv_heads": gqa,
                "bias": True,
            },
            "the four switches, GPT-2's biases kept",
        ),  # fmt: skip
        Variant("v7", "v7", {"num_kv_heads": gqa}, "the four switches and no biases (Llama)"),
    ]


def model_config(variant: Variant, size: dict, block: int) -> ModelConfig:
    return ModelConfig(
        vocab_size=VOCAB_SIZE, max_len=block, dropout=0.0, **size, options=variant.options
    )


def kv_bytes_per_token(architecture: dict) -> int:
    """Key and value per layer per kv head, float32: 2 · L · H_kv · head_dim · 4 bytes."""
    heads = architecture["num_heads"]
    kv_heads = architecture.get("num_kv_heads", heads)
    head_dim = architecture["d_model"] // heads
    return 2 * architecture["num_layers"] * kv_heads * head_dim * 4


@torch.no_grad()
def loss_by_position(model: SequenceModel, data: Tensor, length: int, batch: int) -> Tensor:
    """Mean loss (nats) at each position of back-to-back windows of ``length`` bytes: (length,).

    Raises the model's own ValueError when it cannot read ``length`` tokens."""
    device = next(model.parameters()).device
    windows = (data.numel() - 1) // length
    inputs = data[: windows * length].view(windows, length)  # (W, L)
    targets = data[1 : windows * length + 1].view(windows, length)  # (W, L)
    model.eval()
    total = torch.zeros(length)
    for start in range(0, windows, batch):
        x = inputs[start : start + batch].long().to(device)  # (b, L)
        y = targets[start : start + batch].long().to(device)  # (b, L)
        logits = model(x)  # (b, L, V)
        losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none")  # (b, L)
        total += losses.sum(dim=0).cpu()  # (L,)
    return total / windows  # (L,)


def length_generalisation(model: SequenceModel, data: Tensor, block: int, batch: int) -> dict:
    """Bits per character by position range on windows of LENGTH_FACTOR · block."""
    length = LENGTH_FACTOR * block
    try:
        per_position = loss_by_position(model, data, length, batch) / LN2  # (4T,) bits
    except ValueError as error:
        return {"runs_past_context": False, "reason": str(error)}
    ranges = {"0_T": (0, block), "T_2T": (block, 2 * block), "2T_4T": (2 * block, length)}
    bits = {name: rounded(per_position[a:b].mean().item()) for name, (a, b) in ranges.items()}
    return {"runs_past_context": True, "bits_per_char": bits, "per_position": rounded(
        per_position.tolist())}  # fmt: skip


def step_seconds(model: nn.Module, data: Tensor, block: int, batch: int, steps: int) -> list[float]:
    """Wall time of ``steps`` forward + backward + AdamW steps on random windows, one each."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(0)
    model.train()
    times = []
    for _ in range(steps):
        x, y = sample_batch(data, batch, block, generator)  # (B, T), (B, T)
        x, y = x.to(device), y.to(device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        logits = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return times


def tokens_per_second(models: dict[str, nn.Module], data: Tensor, block: int, batch: int) -> dict:
    """Training tokens/s of each model, timed side by side: TIMING_ROUNDS rounds, each model
    in turn for TIMED_STEPS steps after one warm-up step, so that a slow spell of the machine
    hits every model alike; the median step counts."""
    times: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(TIMING_ROUNDS):
        for name, model in models.items():
            times[name] += step_seconds(model, data, block, batch, 1 + TIMED_STEPS)[1:]
    return {name: batch * block / statistics.median(t) for name, t in times.items()}


def train_variant(
    variant: Variant,
    seed: int,
    corpus: Corpus,
    size: dict,
    training: TrainConfig,
    block: int,
    device: torch.device,
) -> dict:
    """Train one variant from one seed: its val bits/char and length generalisation."""
    torch.manual_seed(seed)
    model = get_stage(variant.version).build_model(model_config(variant, size, block)).to(device)
    generator = torch.Generator().manual_seed(seed)

    def windows(data: Tensor):
        return lambda n, g: sample_batch(data, n, block, g)  # (n, T), (n, T)

    result = train(
        model,
        windows(corpus.train),
        {"val": windows(corpus.val)},
        training,
        generator,
        label=f"{variant.name} seed {seed}",
    )
    val = full_loss(model, corpus.val, block, training.batch_size)
    return {
        "seed": seed,
        "val_bits_per_char": rounded(val / LN2),
        "train_loss_last": rounded(result.history.train_loss[-1]),
        "length": length_generalisation(model, corpus.val, block, training.batch_size),
    }
