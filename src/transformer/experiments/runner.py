"""One experiment on one stage: probe the untrained model, train it, measure, draw, save.

Training is ``transformer.lm``'s one loop. The three tasks use it with a constant learning
rate, weight decay 0.01 on the weight matrices and no clipping (``TASK_TRAINING``), which
keeps the ladder of stages comparable with itself: every stage gets the same recipe.
"""

from __future__ import annotations

import math
import platform
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from transformer.contract import ModelConfig, get_stage
from transformer.experiments import plots, viewer
from transformer.experiments.heads import head_report
from transformer.experiments.metrics import (
    accuracy,
    attention_by_offset,
    attention_mass,
    seen_token_guess,
    similar_vs_dissimilar,
    uniform_attention_mass,
)
from transformer.experiments.tasks import Batch, Task
from transformer.io import write_json
from transformer.lm import TrainConfig, next_token_loss, train

# The size every stage is asked for; each stage takes the settings it has (v1: one head).
MODEL_SIZE = {"d_model": 64, "num_heads": 4, "num_layers": 2}
EVAL_SEED_OFFSET = 10_000  # held-out sequences come from their own generator
HELDOUT_SEQUENCES = 1000
TASK_TRAINING = TrainConfig(
    steps=1500,
    batch_size=64,
    learning_rate=3e-3,
    min_learning_rate=3e-3,  # constant
    warmup_steps=0,
    weight_decay=0.01,
    beta1=0.9,
    beta2=0.999,
    grad_clip=None,
    eval_interval=250,
    eval_batches=2,
)
QUICK_TRAINING = replace(TASK_TRAINING, steps=20, batch_size=16, eval_interval=10, eval_batches=1)
QUICK_HELDOUT_SEQUENCES = 64
CHECKPOINT = "checkpoint.safetensors"


def rounded(value: float | list) -> float | list:
    """Six decimals: enough to compare, short enough to read."""
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return round(float(value), 6)


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min and max."""
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {"mean": rounded(statistics.fmean(values)), "std": rounded(std),
            "min": rounded(min(values)), "max": rounded(max(values))}  # fmt: skip


@dataclass
class StageRun:
    """What one run measured (``result``, saved as JSON) and what it draws."""

    result: dict
    probe_maps: list[torch.Tensor] = field(repr=False)
    trained_maps: list[torch.Tensor] = field(repr=False)
    example_tokens: list[int] = field(repr=False)
    losses: list[float] = field(repr=False)


def to_device(batch: Batch, device: torch.device) -> Batch:
    return Batch(batch.inputs.to(device), batch.targets.to(device), batch.needed.to(device))


def sampler(task: Task, split: str):
    """The training loop's view of a task: (batch_size, generator) -> (inputs, targets)."""

    def sample(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        batch = task.sample(n, generator, split)
        return batch.inputs, batch.targets  # (N, T), (N, T)

    return sample


def probe(model, task: Task, device: torch.device) -> tuple[dict, list[torch.Tensor]]:
    """The untrained stage on a hand-made input: weight on similar vs other tokens."""
    tokens = task.probe_input().to(device)  # (1, T)
    model.eval()
    with torch.no_grad():
        _, maps = model(tokens, return_attention=True)
    maps = [w[0].cpu() for w in maps]  # per layer (H, T, T)
    mean_first_layer = maps[0].mean(dim=0)  # (T, T) averaged over heads
    similar, dissimilar = similar_vs_dissimilar(mean_first_layer, tokens[0].cpu())
    return {
        "tokens": tokens[0].tolist(),
        "similar_weight": rounded(similar),
        "dissimilar_weight": rounded(dissimilar),
        "last_query_weights": rounded(mean_first_layer[-1].tolist()),
        "last_query_weight_min": rounded(mean_first_layer[-1].min().item()),
        "last_query_weight_max": rounded(mean_first_layer[-1].max().item()),
        "last_query_weights_per_head": rounded(maps[0][:, -1].tolist()),
    }, maps


def offset_summary(mass: list[list[float]]) -> dict:
    """One layer's attention by offset (H lists over k) and where each head peaks.
    ``shared_peak_offset`` is the offset every head peaks at, or None when they differ."""
    peaks = [max(range(len(per_head)), key=per_head.__getitem__) for per_head in mass]
    peak_mass = [per_head[k] for per_head, k in zip(mass, peaks, strict=True)]
    return {
        "mass": rounded(mass),
        "peak_offset": peaks,
        "peak_mass": rounded(peak_mass),
        "peak_mass_min": rounded(min(peak_mass)),
        "peak_mass_max": rounded(max(peak_mass)),
        "shared_peak_offset": peaks[0] if len(set(peaks)) == 1 else None,
    }


def heldout_batch(task: Task, split: str, n: int, seed: int, device: torch.device) -> Batch:
    generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
    return to_device(task.sample(n, generator, split=split), device)


def evaluate(
    model, task: Task, n: int, seed: int, device: torch.device
) -> tuple[dict, list[torch.Tensor], list[int]]:
    """Metrics on ``n`` held-out sequences, the first one's maps (H, T, T) per layer, its tokens;
    a task's extra held-out splits (fibonacci's ``unseen_pairs``) get accuracy and loss."""
    batch = heldout_batch(task, "heldout", n, seed, device)
    model.eval()
    with torch.no_grad():
        logits, maps = model(batch.inputs, return_attention=True)  # (N, T, V), L x (N, H, T, T)
    masses = {
        f"layer{i}": rounded(attention_mass(w, batch.needed, batch.targets))
        for i, w in enumerate(maps)
    }
    best = max(max(per_head) for per_head in masses.values())
    measured = {
        "accuracy": rounded(accuracy(logits, batch.targets)),
        "chance": rounded(task.chance),
        "seen_token_guess": rounded(seen_token_guess(batch.inputs, batch.targets)),
        "heldout_loss": rounded(next_token_loss(logits, batch.targets).item()),
        "attention_mass_on_needed": masses,
        "best_head_attention_mass": best,
        "uniform_attention_mass": rounded(
            uniform_attention_mass(batch.needed.cpu(), batch.targets.cpu(), model.config.causal)
        ),
        "attention_by_offset": {
            f"layer{i}": offset_summary(attention_by_offset(w.cpu(), batch.targets.cpu()))
            for i, w in enumerate(maps)
        },
    }
    for split in task.extra_splits:
        extra = heldout_batch(task, split, n, seed, device)
        with torch.no_grad():
            extra_logits = model(extra.inputs)  # (N, T, V)
        measured[split] = {
            "accuracy": rounded(accuracy(extra_logits, extra.targets)),
            "heldout_loss": rounded(next_token_loss(extra_logits, extra.targets).item()),
        }
    measured["heads"] = head_report(model, task, batch, seed)
    example = [w[0].cpu() for w in maps]  # per layer (H, T, T)
    tokens = batch.inputs[0].tolist()
    measured["example"] = {"tokens": tokens, "attention": [rounded(w.tolist()) for w in example]}
    return measured, example, tokens


def model_config(task: Task, version: str, options: dict | None = None) -> ModelConfig:
    """The config ``version`` is built with: MODEL_SIZE and the task's sizes, where the stage
    has such a setting, and the stage options asked for."""
    stage = get_stage(version)
    wanted = {"vocab_size": task.vocab_size, "max_len": task.seq_len, **MODEL_SIZE}
    taken = {k: v for k, v in wanted.items() if k == "vocab_size" or stage.accepts(k, v)}
    return ModelConfig(**taken, options=dict(options or {}))


def run_stage(
    task: Task,
    version: str,
    seed: int,
    train_config: TrainConfig,
    device: torch.device,
    *,
    heldout_sequences: int = HELDOUT_SEQUENCES,
    options: dict | None = None,
    checkpoint_path: Path | None = None,
) -> StageRun:
    stage = get_stage(version)
    config = model_config(task, version, options)
    torch.manual_seed(seed)
    model = stage.build_model(config).to(device)
    probe_result, probe_maps = probe(model, task, device)
    generator = torch.Generator().manual_seed(seed)
    result = train(
        model,
        sampler(task, "train"),
        {split: sampler(task, split) for split in task.splits},
        train_config,
        generator,
        checkpoint_path=checkpoint_path,
        extra={"experiment": task.name, "version": version, "seed": seed},
        label=f"train {task.name} {version}",
    )
    losses = result.history.train_loss
    measured, trained_maps, example = evaluate(model, task, heldout_sequences, seed, device)
    tail = losses[-min(50, len(losses)) :]
    measured["final_train_loss"] = rounded(sum(tail) / len(tail))
    measured["loss_curve"] = rounded(losses[:: max(1, len(losses) // 100)])
    measured["eval_curve"] = [
        {k: rounded(v) if k != "step" else v for k, v in e.items()} for e in result.history.evals
    ]
    run = {
        "experiment": task.name,
        "version": version,
        "stage_idea": stage.idea,
        "task": {
            "description": task.description,
            "vocab_size": task.vocab_size,
            "seq_len": task.seq_len,
            "chance": rounded(task.chance),
        },
        "model": stage.architecture(config),
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "training": train_config.to_dict() | {"heldout_sequences": heldout_sequences},
        "seed": seed,
        "device": device.type,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "probe": probe_result,
        "trained": measured,
    }
    return StageRun(run, probe_maps, trained_maps, example, losses)


FIGURES = ("probe_attention.png", "trained_attention.png", "loss_curve.png")


def save_stage(run: StageRun, out_dir: Path) -> Path:
    """Write the figures, then results.json (so a results.json always has its figures).
    A result marked ``"quick": true`` says so in every figure's title."""
    name, version = run.result["experiment"], run.result["version"]
    note = plots.QUICK_NOTE if run.result.get("quick") else ""
    plots.attention_heatmaps(
        out_dir / FIGURES[0],
        run.probe_maps,
        run.result["probe"]["tokens"],
        f"{name}, {version} untrained: attention on a hand-made input{note}",
    )
    accuracy_pct = 100 * run.result["trained"]["accuracy"]
    plots.attention_heatmaps(
        out_dir / FIGURES[1],
        run.trained_maps,
        run.example_tokens,
        f"{name}, {version} trained ({accuracy_pct:.1f}% held-out accuracy){note}",
    )
    plots.loss_curve(
        out_dir / FIGURES[2],
        run.losses,
        math.log(run.result["task"]["vocab_size"]),
        f"{name}, {version}: training loss{note}",
    )
    trained = run.result["trained"]
    viewer.write_page(
        out_dir / viewer.PAGE,
        f"{name}, {version} trained ({accuracy_pct:.1f}% held-out accuracy){note}",
        trained["example"]["tokens"],
        trained["example"]["attention"],
        scores=trained["heads"]["scores"],
        task_score=trained["heads"]["task_score"],
        caption="The first held-out sequence; the scores are over every held-out sequence.",
    )
    path = out_dir / "results.json"
    write_json(path, run.result | {"files": [*FIGURES, viewer.PAGE, CHECKPOINT]})
    return path
