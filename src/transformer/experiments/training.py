"""Training a stage's sequence model on a task, and evaluating it on held-out sequences."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm import tqdm

from transformer.contract import SequenceModel
from transformer.experiments.tasks import IGNORE, Batch, Task


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1500
    batch_size: int = 64
    learning_rate: float = 3e-3
    eval_sequences: int = 1000


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over scored positions. logits (N, T, V), targets (N, T)."""
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=IGNORE)


def to_device(batch: Batch, device: torch.device) -> Batch:
    return Batch(batch.inputs.to(device), batch.targets.to(device), batch.needed.to(device))


def train(
    model: SequenceModel,
    task: Task,
    config: TrainConfig,
    generator: torch.Generator,
    device: torch.device,
    label: str = "",
) -> list[float]:
    """AdamW on fresh batches from ``generator``; returns the loss of every step."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    model.train()
    losses = []
    for _ in tqdm(range(config.steps), desc=f"train {label}", leave=False, disable=None):
        batch = to_device(task.sample(config.batch_size, generator), device)
        loss = sequence_loss(model(batch.inputs), batch.targets)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    return losses
