"""Training a GPT on a token stream: AdamW, warmup + cosine schedule, clipping, exact resume.

* AdamW with weight decay on every parameter with two or more dimensions (the weight
  matrices and, as in nanoGPT, the token and position embeddings) and none on biases and
  LayerNorm gains.
* The learning rate rises linearly for ``warmup_steps``, then follows half a cosine from
  ``learning_rate`` down to the floor ``min_learning_rate`` at the last step.
* The global gradient norm is clipped to ``grad_clip``; the norm before clipping is recorded.
* Every ``eval_interval`` steps the loss is estimated on fixed train and val batches
  (dropout off; a generator of their own, so evaluating changes no training randomness),
  and a checkpoint is saved when a path is given.
* A checkpoint holds weights, optimizer state, step, history and every random state, so
  resuming from step k and training to n gives the same weights, bit for bit, as one
  uninterrupted run to n on the same device.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from transformer._checks import check_positive_int
from transformer.v5_gpt.checkpoint import (
    CheckpointError,
    differences,
    load_checkpoint,
    save_checkpoint,
)
from transformer.v5_gpt.data import sample_batch

EVAL_SEED = 1234  # the fixed batches every evaluation uses


def check_number(name: str, value: object, low: float, high: float = math.inf) -> float:
    """Raise unless ``value`` is a real number with ``low <= value < high``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value < high:
        wanted = f"a number >= {low}" if high == math.inf else f"a number in [{low}, {high})"
        raise ValueError(f"{name}: expected {wanted}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class TrainConfig:
    """How to train; every field is checked when the config is made."""

    steps: int = 2500
    batch_size: int = 16
    block_size: int = 128  # tokens of context per training sequence
    learning_rate: float = 3e-3  # peak, reached at the end of warmup
    min_learning_rate: float = 3e-4  # the floor the cosine decays to
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float | None = 1.0  # max global gradient norm; None: no clipping
    eval_interval: int = 250
    eval_batches: int = 10

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "block_size", "eval_interval", "eval_batches"):
            check_positive_int(name, getattr(self, name))
        warmup = self.warmup_steps
        if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < self.steps:
            raise ValueError(
                f"warmup_steps: expected an integer in [0, steps={self.steps}), got {warmup!r}"
            )
        if check_number("learning_rate", self.learning_rate, 0.0) == 0.0:
            raise ValueError(f"learning_rate: expected a number > 0, got {self.learning_rate!r}")
        check_number("min_learning_rate", self.min_learning_rate, 0.0, self.learning_rate)
        check_number("weight_decay", self.weight_decay, 0.0)
        check_number("beta1", self.beta1, 0.0, 1.0)
        check_number("beta2", self.beta2, 0.0, 1.0)
        if self.grad_clip is not None and check_number("grad_clip", self.grad_clip, 0.0) == 0.0:
            raise ValueError(f"grad_clip: expected a number > 0 or None, got {self.grad_clip!r}")

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate_at(step: int, config: TrainConfig) -> float:
    """The learning rate for step ``step`` (0-based) of ``config.steps``."""
    peak, floor, warmup = config.learning_rate, config.min_learning_rate, config.warmup_steps
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, config.steps - 1 - warmup))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW: decay on parameters with >= 2 dimensions, none on biases and LayerNorm."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=1e-8
    )


def language_model_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-token cross-entropy in nats. logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())  # (B*T, V) vs (B*T,)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Tensor,
    targets: Tensor,
    lr: float,
    grad_clip: float | None,
) -> tuple[float, float]:
    """One update at learning rate ``lr``; returns the loss and the gradient norm before
    clipping. The clipped gradients stay in ``.grad`` until the next step."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    logits = model(inputs)  # (B, T, V)
    loss = language_model_loss(logits, targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    limit = math.inf if grad_clip is None else grad_clip  # inf: measure, scale by 1.0
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), limit)
    optimizer.step()
    return loss.item(), norm.item()


@torch.no_grad()
def estimate_loss(
    model: nn.Module, data: Tensor, config: TrainConfig, device: torch.device
) -> float:
    """Mean loss over ``config.eval_batches`` fixed batches of ``data`` (N,), dropout off."""
    generator = torch.Generator().manual_seed(EVAL_SEED)
    was_training = model.training
    model.eval()
    total = 0.0
    for _ in range(config.eval_batches):
        inputs, targets = sample_batch(data, config.batch_size, config.block_size, generator)
        logits = model(inputs.to(device))  # (B, T, V)
        total += language_model_loss(logits, targets.to(device)).item()
    model.train(was_training)
    return total / config.eval_batches


@dataclass
class History:
    """Per step: loss, learning rate, gradient norm. Per evaluation: step, train and val loss."""

    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def rng_states(generator: torch.Generator, device: torch.device) -> dict[str, Tensor]:
    """Every random state training uses: batches, and dropout (global CPU or CUDA)."""
    states = {"batches": generator.get_state(), "torch_cpu": torch.get_rng_state()}
    if device.type == "cuda":
        states["torch_cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_rng(
    path: Path, states: dict[str, Tensor], generator: torch.Generator, device: torch.device
) -> None:
    missing = sorted(set(rng_states(generator, device)) - set(states))
    if missing:
        raise CheckpointError(
            f"{path}: cannot resume on {device.type}, expected random states "
            f"{sorted(rng_states(generator, device))}, got {sorted(states)} "
            f"(was it saved on another device?)"
        )
    generator.set_state(states["batches"])
    torch.set_rng_state(states["torch_cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states["torch_cuda"], device)


@dataclass
class TrainResult:
    step: int  # steps done so far (== config.steps when finished)
    history: History
    optimizer: torch.optim.Optimizer = field(repr=False)


def check_same(path: Path, saved: dict, current: dict, what: str) -> None:
    diff = differences(saved, current, "checkpoint", "this run")
    if diff:
        raise CheckpointError(
            f"{path}: cannot resume, {what} in the checkpoint and in this run differ in "
            f"{len(diff)} field(s): {', '.join(diff)}"
        )


def train(
    model: nn.Module,
    train_data: Tensor,
    val_data: Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    *,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    extra: dict | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train ``model`` (already on its device) on windows of ``train_data`` (N,).

    With ``checkpoint_path``, a checkpoint is saved at every evaluation and at the end;
    ``resume=True`` first loads it (its training config and ``extra`` must match).
    ``stop_after`` ends the run early at that step, as an interruption would, keeping the
    schedule of ``config.steps``. ``progress=None`` shows a bar only on a terminal; ``log``
    receives one line per evaluation.
    """
    device = next(model.parameters()).device
    block = getattr(model.config, "n_positions", config.block_size)
    if config.block_size > block:
        raise ValueError(
            f"block_size: expected at most the model's n_positions={block}, got {config.block_size}"
        )
    optimizer = build_optimizer(model, config)
    history, step, extra = History(), 0, extra or {}
    if resume:
        if checkpoint_path is None:
            raise ValueError("checkpoint_path: expected a path to resume from, got None")
        saved = load_checkpoint(checkpoint_path, model, optimizer)
        check_same(checkpoint_path, saved.train_config or {}, config.to_dict(), "the TrainConfig")
        check_same(checkpoint_path, saved.extra, extra, "the run settings (extra)")
        restore_rng(checkpoint_path, saved.rng, generator, device)
        history, step = History(**(saved.history or {})), saved.step
    end = (
        config.steps
        if stop_after is None
        else min(check_positive_int("stop_after", stop_after), config.steps)
    )

    def evaluate_and_save() -> None:
        train_loss = estimate_loss(model, train_data, config, device)
        val_loss = estimate_loss(model, val_data, config, device)
        history.evals.append({"step": step, "train_loss": train_loss, "val_loss": val_loss})
        if log is not None:
            log(f"step {step:>5}: train loss {train_loss:.4f}, val loss {val_loss:.4f}")
        save()

    def save() -> None:
        if checkpoint_path is not None:
            save_checkpoint(
                checkpoint_path,
                model,
                optimizer,
                step=step,
                rng=rng_states(generator, device),
                train_config=config.to_dict(),
                history=history.to_dict(),
                extra=extra,
            )

    model.train()
    if step == 0 and not history.evals:
        evaluate_and_save()  # the untrained loss, near ln(vocab_size)
    hide = None if progress is None else not progress
    bar = tqdm(total=config.steps, initial=step, desc="train v5 GPT", disable=hide)
    while step < end:
        inputs, targets = sample_batch(train_data, config.batch_size, config.block_size, generator)
        lr = learning_rate_at(step, config)
        loss, norm = train_step(
            model, optimizer, inputs.to(device), targets.to(device), lr, config.grad_clip
        )
        step += 1
        history.train_loss.append(loss)
        history.lr.append(lr)
        history.grad_norm.append(norm)
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}", norm=f"{norm:.2f}")
        if step % config.eval_interval == 0 or step == config.steps:
            evaluate_and_save()
    bar.close()
    if not history.evals or history.evals[-1]["step"] != step:
        save()  # stopped between evaluations
    return TrainResult(step, history, optimizer)
