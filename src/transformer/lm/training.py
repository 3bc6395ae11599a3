"""The one training loop: AdamW, warmup + cosine schedule, clipping, evaluation, exact resume.

Every experiment trains through :func:`train`: the three small tasks and the language model.

* AdamW with weight decay on every parameter with two or more dimensions (the weight
  matrices and, as in nanoGPT, the token and position embeddings) and none on biases and
  LayerNorm gains.
* The learning rate rises linearly for ``warmup_steps``, then follows half a cosine from
  ``learning_rate`` down to the floor ``min_learning_rate`` at the last step
  (``min_learning_rate == learning_rate`` gives a constant rate). ``schedule="inverse_sqrt"``
  is the original Transformer's instead: the same linear warmup, then a decay as
  1/√step, so that ``learning_rate`` is the peak.
* ``label_smoothing`` > 0 spreads that much of each target's probability evenly over the
  vocabulary, as in the original Transformer (0.1 there). It shapes the training loss;
  evaluation losses are the plain cross-entropy.
* ``grad_accum`` > 1 splits each batch into that many micro-batches whose gradients add up
  before the one update: the same step with less memory.
* The global gradient norm is clipped to ``grad_clip``; the norm before clipping is recorded.
* A loss that is not finite stops training with :class:`TrainingDiverged`, naming the step,
  before the optimizer takes that step.
* Every ``eval_interval`` steps the loss is estimated on fixed batches of each evaluation
  set (dropout off; a generator of their own, so evaluating changes no training randomness),
  and a checkpoint is saved when a path is given.
* A checkpoint holds weights, optimizer state, step, history and every random state, so
  resuming from step k and training to n gives the same weights, bit for bit, as one
  uninterrupted run to n on the same device. Resuming with more ``steps`` than the
  checkpoint's run had extends it: from step k on, the learning rate follows the schedule
  of the new total (the cosine then restarts its decay from a higher rate), so an extended
  run is not the run a larger ``steps`` would have given from the start.

Data comes as *samplers*: ``sample(batch_size, generator) -> (inputs, targets)``, both
(B, T) token ids, with ``IGNORE_INDEX`` at target positions that are not scored. ``inputs``
may also be a tuple of (B, ...) tensors, passed to the model as its arguments: an
encoder-decoder's ``(source, target_in)``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from transformer._checks import check_number, check_positive_int
from transformer.lm.checkpoint import (
    CheckpointError,
    differences,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from transformer.lm.distributed import SINGLE, World, wrap

EVAL_SEED = 1234  # the fixed batches every evaluation uses
IGNORE_INDEX = -100  # a target that is not scored (cross_entropy's default ignore_index)
SCHEDULES = ("cosine", "inverse_sqrt")
Inputs = Tensor | tuple[Tensor, ...]  # the model's argument, or its arguments
Sampler = Callable[[int, torch.Generator], tuple[Inputs, Tensor]]


class TrainingDiverged(RuntimeError):
    """The training loss stopped being a finite number; the message names the step."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train; every field is checked when the config is made."""

    steps: int = 2500
    batch_size: int = 16
    learning_rate: float = 3e-3  # peak, reached at the end of warmup
    min_learning_rate: float = 3e-4  # the floor the cosine decays to
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float | None = 1.0  # max global gradient norm; None: no clipping
    eval_interval: int = 250
    eval_batches: int = 10
    grad_accum: int = 1  # micro-batches per step; their gradients add up to the batch's
    label_smoothing: float = 0.0  # the share of each target spread over the vocabulary
    schedule: str = "cosine"  # or "inverse_sqrt", the original Transformer's

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "eval_interval", "eval_batches", "grad_accum"):
            check_positive_int(name, getattr(self, name))
        if self.batch_size % self.grad_accum:
            raise ValueError(
                f"grad_accum: expected a divisor of batch_size={self.batch_size} (the batch is "
                f"split into grad_accum equal micro-batches), got {self.grad_accum}"
            )
        warmup = self.warmup_steps
        if isinstance(warmup, bool) or not isinstance(warmup, int) or not 0 <= warmup < self.steps:
            raise ValueError(
                f"warmup_steps: expected an integer in [0, steps={self.steps}), got {warmup!r}"
            )
        if check_number("learning_rate", self.learning_rate, 0.0) == 0.0:
            raise ValueError(f"learning_rate: expected a number > 0, got {self.learning_rate!r}")
        check_number("min_learning_rate", self.min_learning_rate, 0.0)
        if self.min_learning_rate > self.learning_rate:
            raise ValueError(
                f"min_learning_rate: expected at most learning_rate={self.learning_rate}, "
                f"got {self.min_learning_rate!r}"
            )
        check_number("weight_decay", self.weight_decay, 0.0)
        check_number("beta1", self.beta1, 0.0, 1.0)
        check_number("beta2", self.beta2, 0.0, 1.0)
        if self.grad_clip is not None and check_number("grad_clip", self.grad_clip, 0.0) == 0.0:
            raise ValueError(f"grad_clip: expected a number > 0 or None, got {self.grad_clip!r}")
        check_number("label_smoothing", self.label_smoothing, 0.0, 1.0)
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"schedule: expected one of {', '.join(SCHEDULES)}, got {self.schedule!r}"
            )
        if self.schedule == "inverse_sqrt" and warmup == 0:
            raise ValueError(
                "warmup_steps: expected at least 1 with schedule='inverse_sqrt' (the rate "
                "peaks at the end of warmup), got 0"
            )

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate_at(step: int, config: TrainConfig) -> float:
    """The learning rate for step ``step`` (0-based) of ``config.steps``."""
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step: expected an integer >= 0, got {step!r}")
    peak, floor, warmup = config.learning_rate, config.min_learning_rate, config.warmup_steps
    if step < warmup:
        return peak * (step + 1) / warmup
    if config.schedule == "inverse_sqrt":  # d_model^-0.5 * min(s^-0.5, s * w^-1.5), rescaled
        return peak * math.sqrt(warmup / (step + 1))
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


def next_token_loss(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """Mean cross-entropy in nats over scored positions. logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX,
        label_smoothing=label_smoothing,
    )  # fmt: skip


def summed_loss(logits: Tensor, targets: Tensor, label_smoothing: float = 0.0) -> Tensor:
    """The sum (not the mean) of the cross-entropy over scored targets: logits (b, T, V),
    targets (b, T). Divided by a whole batch's count, parts of it add up to its mean."""
    return F.cross_entropy(
        logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE_INDEX, reduction="sum",
        label_smoothing=label_smoothing,
    )  # fmt: skip


def to_device(inputs: Inputs, device: torch.device) -> Inputs:
    """A batch's inputs (one tensor or a tuple of them) on ``device``."""
    if isinstance(inputs, tuple):
        return tuple(part.to(device) for part in inputs)
    return inputs.to(device)


def apply_model(model: nn.Module, inputs: Inputs) -> Tensor:
    """``model(inputs)``, or ``model(*inputs)`` for a tuple: logits (B, T, V)."""
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def split_inputs(inputs: Inputs, parts: int) -> list[Inputs]:
    """The batch's inputs in ``parts`` equal micro-batches along the batch axis."""
    if isinstance(inputs, tuple):
        return list(zip(*(part.chunk(parts) for part in inputs), strict=True))
    return list(inputs.chunk(parts))


def shard_inputs(world: World, inputs: Inputs) -> Inputs:
    """This rank's slice of the batch's inputs."""
    if isinstance(inputs, tuple):
        return tuple(world.shard(part) for part in inputs)
    return world.shard(inputs)


def check_finite(value: float, step: int, lr: float) -> None:
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"loss: expected a finite training loss, got {value} at step {step + 1} "
            f"(learning rate {lr:.3g}); no update was made. Try a lower learning rate."
        )


def accumulate_gradients(
    model: nn.Module, inputs: Inputs, targets: Tensor, parts: int, scored: int,
    scale: float = 1.0, no_sync=None, label_smoothing: float = 0.0,
) -> float:  # fmt: skip
    """The loss over ``scored`` targets, as ``parts`` micro-batches whose gradients add up in
    ``.grad``: each sums its token losses and divides by ``scored``, the whole (global)
    batch's count of scored targets, so the total is the batch's gradient, not a mean of
    micro-batch means. ``scale`` multiplies the gradients (the number of ranks, whose
    average DDP takes); ``no_sync`` is DDP's, so that only the last part all-reduces."""
    total = 0.0
    pairs = list(zip(split_inputs(inputs, parts), targets.chunk(parts), strict=True))
    for index, (part_inputs, part_targets) in enumerate(pairs):  # (b, T) each
        last = index == len(pairs) - 1
        with contextlib.nullcontext() if last or no_sync is None else no_sync():
            logits = apply_model(model, part_inputs)  # (b, T, V)
            loss = summed_loss(logits, part_targets, label_smoothing) / scored
            total += loss.item()
            (loss * scale).backward()
    return total


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Inputs,
    targets: Tensor,
    lr: float,
    grad_clip: float | None,
    step: int = 0,
    grad_accum: int = 1,
    world: World = SINGLE,
    ddp: nn.Module | None = None,
    label_smoothing: float = 0.0,
) -> tuple[float, float]:
    """One update at learning rate ``lr`` on the (global) batch; returns its loss and the
    gradient norm before clipping. The clipped gradients stay in ``.grad`` until the next
    step. With ``grad_accum`` > 1 the batch goes through the model in that many equal parts
    (less memory, the same update up to rounding; dropout draws differ). With several ranks,
    each takes its slice of the batch through ``ddp`` (the model wrapped in
    ``DistributedDataParallel``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    if grad_accum == 1 and world.size == 1:
        logits = apply_model(model, inputs)  # (B, T, V)
        loss = next_token_loss(logits, targets, label_smoothing)
        value = loss.item()
        check_finite(value, step, lr)
        loss.backward()
    else:
        scored = max(1, int((targets != IGNORE_INDEX).sum()))  # over the global batch
        value = accumulate_gradients(
            ddp or model, shard_inputs(world, inputs), world.shard(targets), grad_accum, scored,
            scale=world.size, no_sync=None if ddp is None else ddp.no_sync,
            label_smoothing=label_smoothing,
        )  # fmt: skip
        value = world.sum(value, targets.device)
        check_finite(value, step, lr)
    limit = math.inf if grad_clip is None else grad_clip  # inf: measure, scale by 1.0
    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), limit)
    optimizer.step()
    return value, norm.item()


@torch.no_grad()
def estimate_loss(
    model: nn.Module,
    sample: Sampler,
    config: TrainConfig,
    device: torch.device,
    world: World = SINGLE,
) -> float:
    """Mean loss over ``config.eval_batches`` fixed batches from ``sample``, dropout off;
    with several ranks each scores its slice and the sums are all-reduced."""
    generator = torch.Generator().manual_seed(EVAL_SEED)
    was_training = model.training
    model.eval()
    total = 0.0
    for _ in range(config.eval_batches):
        inputs, targets = sample(config.batch_size, generator)  # (B, T), (B, T)
        if world.size == 1:
            logits = apply_model(model, to_device(inputs, device))  # (B, T, V)
            total += next_token_loss(logits, targets.to(device)).item()
            continue
        scored = max(1, int((targets != IGNORE_INDEX).sum()))
        local_inputs = to_device(shard_inputs(world, inputs), device)
        logits = apply_model(model, local_inputs)  # (B / ranks, T, V)
        local = summed_loss(logits, world.shard(targets).to(device)).item()
        total += world.sum(local / scored, device)
    model.train(was_training)
    return total / config.eval_batches


@dataclass
class History:
    """Per step: loss, learning rate, gradient norm. Per evaluation: step and each set's loss."""

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


def restore_rng(states: dict[str, Tensor], generator: torch.Generator, device: torch.device):
    generator.set_state(states["batches"])
    torch.set_rng_state(states["torch_cpu"])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states["torch_cuda"], device)


@dataclass
class TrainResult:
    step: int  # steps done so far (== config.steps when finished)
    history: History
    optimizer: torch.optim.Optimizer = field(repr=False)


ADDED_FIELDS = {"label_smoothing": 0.0, "schedule": "cosine"}


def check_same(path: Path, saved: object, current: dict, what: str) -> None:
    diff = differences(saved if isinstance(saved, dict) else {}, current, "checkpoint", "this run")
    if diff:
        raise CheckpointError(
            f"{path}: cannot resume, {what} in the checkpoint and in this run differ in "
            f"{len(diff)} field(s): {', '.join(diff)}"
        )


def saved_history(path: Path, values: object) -> History:
    """The checkpoint's history, refused unless it has exactly History's fields as lists."""
    names = [f.name for f in fields(History)]
    if not isinstance(values, dict) or sorted(values) != sorted(names):
        got = sorted(values) if isinstance(values, dict) else values
        raise CheckpointError(f"{path}: expected a history with keys {names}, got {got!r}")
    if not all(isinstance(values[name], list) for name in names):
        raise CheckpointError(f"{path}: expected the history's values to be lists")
    return History(**values)


def resume_from(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: TrainConfig,
    extra: dict,
    generator: torch.Generator,
    device: torch.device,
) -> tuple[History, int]:
    """Check the checkpoint at ``path`` against this run in full, then load it."""
    checkpoint = read_checkpoint(path)
    # grad_accum changes how a batch is split, not the training: a run may resume with
    # another (and checkpoints from before the field hold none). steps may grow: the run is
    # extended. Checkpoints from before label_smoothing and schedule trained with their
    # defaults.
    free = ("grad_accum", "steps")
    saved = checkpoint.train_config
    if isinstance(saved, dict):
        saved = ADDED_FIELDS | {k: v for k, v in saved.items() if k not in free}
    current = {k: v for k, v in config.to_dict().items() if k not in free}
    check_same(path, saved, current, "the TrainConfig")
    check_same(path, checkpoint.extra, extra, "the run settings (extra)")
    history = saved_history(path, checkpoint.history)
    if checkpoint.step > config.steps:
        raise CheckpointError(
            f"{path}: expected a step <= steps={config.steps}, got step {checkpoint.step}"
        )
    states = rng_states(generator, device)
    load_checkpoint(checkpoint, model, optimizer, rng_now=states)
    restore_rng(checkpoint.rng, generator, device)
    return history, checkpoint.step


def train(
    model: nn.Module,
    sample: Sampler,
    eval_sets: Mapping[str, Sampler],
    config: TrainConfig,
    generator: torch.Generator,
    *,
    checkpoint_path: Path | None = None,
    resume: bool = False,
    stop_after: int | None = None,
    extra: dict | None = None,
    progress: bool | None = None,
    log: Callable[[str], None] | None = None,
    label: str = "train",
    world: World = SINGLE,
) -> TrainResult:
    """Train ``model`` (already on its device) on batches from ``sample``.

    ``eval_sets`` names the samplers to evaluate on (for example ``{"train": ..., "val":
    ...}``); each evaluation records ``{"step", "<name>_loss", ...}``. With
    ``checkpoint_path``, a checkpoint is saved at every evaluation and at the end;
    ``resume=True`` first loads it (its training config and ``extra`` must match).
    ``stop_after`` ends the run early at that step, as an interruption would, keeping the
    schedule of ``config.steps``. ``progress=None`` shows a bar only on a terminal; ``log``
    receives one line per evaluation.

    With ``world`` of several ranks (under torchrun), every rank calls ``train`` with the same
    arguments; each trains on its slice of every batch through ``DistributedDataParallel``,
    and only rank 0 writes the checkpoint.
    """
    device = next(model.parameters()).device
    if config.batch_size % (world.size * config.grad_accum):
        raise ValueError(
            f"batch_size: expected a multiple of ranks x grad_accum = {world.size} x "
            f"{config.grad_accum}, got {config.batch_size}"
        )
    ddp = wrap(model, world)  # None with one rank
    optimizer = build_optimizer(model, config)
    history, step, extra = History(), 0, extra or {}
    if resume:
        if checkpoint_path is None:
            raise ValueError("checkpoint_path: expected a path to resume from, got None")
        history, step = resume_from(
            checkpoint_path, model, optimizer, config, extra, generator, device
        )
    end = (
        config.steps
        if stop_after is None
        else min(check_positive_int("stop_after", stop_after), config.steps)
    )

    def evaluate_and_save() -> None:
        losses = {
            f"{name}_loss": estimate_loss(model, s, config, device, world)
            for name, s in eval_sets.items()
        }
        history.evals.append({"step": step, **losses})
        if log is not None and world.is_main:
            shown = ", ".join(f"{k.removesuffix('_loss')} loss {v:.4f}" for k, v in losses.items())
            log(f"step {step:>5}: {shown}")
        save()

    def save() -> None:
        if checkpoint_path is not None and world.is_main:
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
    hide = (None if progress is None else not progress) if world.is_main else True
    bar = tqdm(total=config.steps, initial=step, desc=label, disable=hide, leave=False)
    while step < end:
        inputs, targets = sample(config.batch_size, generator)  # (B, T), (B, T)
        lr = learning_rate_at(step, config)
        loss, norm = train_step(
            model, optimizer, to_device(inputs, device), targets.to(device), lr, config.grad_clip,
            step, config.grad_accum, world, ddp, config.label_smoothing,
        )  # fmt: skip
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
