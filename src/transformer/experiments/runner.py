"""One experiment on one stage: probe the untrained model, train it, measure, draw, save."""

from __future__ import annotations

import math
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from transformer.contract import ModelConfig, get_stage
from transformer.experiments import plots
from transformer.experiments.atomic import write_json
from transformer.experiments.metrics import (
    accuracy,
    attention_mass,
    seen_token_guess,
    similar_vs_dissimilar,
    uniform_attention_mass,
)
from transformer.experiments.tasks import Task
from transformer.experiments.training import TrainConfig, sequence_loss, to_device, train

MODEL_SIZE = {"d_model": 64, "num_heads": 4, "num_layers": 2}
EVAL_SEED_OFFSET = 10_000  # held-out sequences come from their own generator


def rounded(value: float | list) -> float | list:
    """Six decimals: enough to compare, short enough to read."""
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return round(float(value), 6)


@dataclass
class StageRun:
    """What one run measured (``result``, saved as JSON) and what it draws."""

    result: dict
    probe_maps: list[torch.Tensor] = field(repr=False)
    trained_maps: list[torch.Tensor] = field(repr=False)
    example_tokens: list[int] = field(repr=False)
    losses: list[float] = field(repr=False)


def probe(model, task: Task, device: torch.device) -> tuple[dict, list[torch.Tensor]]:
    """The seed's analysis of the untrained stage on a hand-made input."""
    tokens = task.probe_input().to(device)  # (1, T)
    model.eval()
    with torch.no_grad():
        model(tokens)
    maps = [w[0].cpu() for w in model.attention_maps]  # per layer (H, T, T)
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


def evaluate(
    model, task: Task, n: int, seed: int, device: torch.device
) -> tuple[dict, list[torch.Tensor], list[int]]:
    """Metrics on ``n`` held-out sequences, the first one's maps (H, T, T) per layer, its tokens."""
    generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
    batch = to_device(task.sample(n, generator, split="heldout"), device)
    model.eval()
    with torch.no_grad():
        logits = model(batch.inputs)  # (N, T, V)
    masses = {
        f"layer{i}": rounded(attention_mass(w, batch.needed, batch.targets))
        for i, w in enumerate(model.attention_maps)
    }
    best = max(max(per_head) for per_head in masses.values())
    measured = {
        "accuracy": rounded(accuracy(logits, batch.targets)),
        "chance": rounded(task.chance),
        "seen_token_guess": rounded(seen_token_guess(batch.inputs, batch.targets)),
        "heldout_loss": rounded(sequence_loss(logits, batch.targets).item()),
        "attention_mass_on_needed": masses,
        "best_head_attention_mass": best,
        "uniform_attention_mass": rounded(
            uniform_attention_mass(batch.needed.cpu(), batch.targets.cpu(), model.config.causal)
        ),
    }
    example = [w[0].cpu() for w in model.attention_maps]  # per layer (H, T, T)
    return measured, example, batch.inputs[0].tolist()


def run_stage(
    task: Task, version: str, seed: int, train_config: TrainConfig, device: torch.device
) -> StageRun:
    stage = get_stage(version)
    config = ModelConfig(vocab_size=task.vocab_size, max_len=task.seq_len, **MODEL_SIZE)
    torch.manual_seed(seed)
    model = stage.build_model(config).to(device)
    probe_result, probe_maps = probe(model, task, device)
    generator = torch.Generator().manual_seed(seed)
    losses = train(model, task, train_config, generator, device, label=f"{task.name} {version}")
    measured, trained_maps, example = evaluate(
        model, task, train_config.eval_sequences, seed, device
    )
    tail = losses[-min(50, len(losses)) :]
    measured["final_train_loss"] = rounded(sum(tail) / len(tail))
    measured["loss_curve"] = rounded(losses[:: max(1, len(losses) // 100)])
    result = {
        "experiment": task.name,
        "version": version,
        "stage_idea": stage.idea,
        "task": {
            "description": task.description,
            "vocab_size": task.vocab_size,
            "seq_len": task.seq_len,
            "chance": rounded(task.chance),
        },
        "model": asdict(config),
        "training": asdict(train_config),
        "seed": seed,
        "device": device.type,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "probe": probe_result,
        "trained": measured,
    }
    return StageRun(result, probe_maps, trained_maps, example, losses)


FIGURES = ("probe_attention.png", "trained_attention.png", "loss_curve.png")


def save_stage(run: StageRun, out_dir: Path) -> Path:
    """Write the figures, then results.json (so a results.json always has its figures)."""
    name, version = run.result["experiment"], run.result["version"]
    plots.attention_heatmaps(
        out_dir / FIGURES[0],
        run.probe_maps,
        run.result["probe"]["tokens"],
        f"{name}, {version} untrained: attention on a hand-made input",
    )
    accuracy_pct = 100 * run.result["trained"]["accuracy"]
    plots.attention_heatmaps(
        out_dir / FIGURES[1],
        run.trained_maps,
        run.example_tokens,
        f"{name}, {version} trained ({accuracy_pct:.1f}% held-out accuracy)",
    )
    plots.loss_curve(
        out_dir / FIGURES[2],
        run.losses,
        math.log(run.result["task"]["vocab_size"]),
        f"{name}, {version}: training loss",
    )
    path = out_dir / "results.json"
    write_json(path, run.result | {"files": list(FIGURES)})
    return path
