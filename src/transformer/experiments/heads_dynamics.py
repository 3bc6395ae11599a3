"""When does the induction head form? Its score and the loss, measured during training.

One stage is trained on the pattern task with the task recipe (``TASK_TRAINING``). Every
``every`` steps training stops (``train(stop_after=...)``), the model is measured, and
training resumes from the checkpoint it just wrote, so the run is the one an uninterrupted
run would be. Each measurement is the held-out accuracy and loss, the mean training loss of
the steps since the last one, and the best induction score over the heads
(``transformer.experiments.heads``), on the same held-out batch every time.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from transformer.contract import get_stage  # noqa: E402
from transformer.experiments.heads import head_scores  # noqa: E402
from transformer.experiments.metrics import accuracy  # noqa: E402
from transformer.experiments.runner import (  # noqa: E402
    TASK_TRAINING,
    heldout_batch,
    model_config,
    rounded,
    sampler,
)
from transformer.experiments.tasks import get_task  # noqa: E402
from transformer.io import write_figure  # noqa: E402
from transformer.lm import next_token_loss, train  # noqa: E402

TASK = "pattern"
HELDOUT = 500


def measure(model, task, batch, seed: int) -> dict:
    """Held-out accuracy and loss and the best induction score, at the current weights."""
    model.eval()
    with torch.no_grad():
        logits = model(batch.inputs)  # (N, T, V)
    scores = head_scores(model, batch.inputs, task.vocab_size, seed)["induction"]  # (L, H)
    model.train()
    return {
        "heldout_accuracy": rounded(accuracy(logits, batch.targets)),
        "heldout_loss": rounded(next_token_loss(logits, batch.targets).item()),
        "induction": rounded(scores.max().item()),
        "induction_head": [int(i) for i in divmod(int(scores.argmax()), scores.shape[1])],
    }


def run(
    version: str, seed: int, every: int, device: torch.device, steps: int | None = None
) -> dict:
    """One seed's curve: a measurement at step 0 and every ``every`` steps after."""
    task = get_task(TASK)
    config = TASK_TRAINING if steps is None else replace(TASK_TRAINING, steps=steps)
    torch.manual_seed(seed)
    model = get_stage(version).build_model(model_config(task, version)).to(device)
    batch = heldout_batch(task, "heldout", HELDOUT, seed, device)
    points = [{"step": 0, "train_loss": None, **measure(model, task, batch, seed)}]
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = Path(folder) / "checkpoint.safetensors"
        for stop in range(every, config.steps + every, every):
            stop = min(stop, config.steps)
            result = train(
                model, sampler(task, "train"), {}, config, torch.Generator().manual_seed(seed),
                checkpoint_path=checkpoint, resume=stop > every, stop_after=stop,
                extra={"experiment": TASK, "version": version, "seed": seed}, progress=False,
            )  # fmt: skip
            segment = result.history.train_loss[points[-1]["step"] : stop]
            point = {"step": stop, "train_loss": rounded(sum(segment) / len(segment))}
            points.append(point | measure(model, task, batch, seed))
    return {"seed": seed, "points": points}


ZOOM = 200  # the right panel: the first steps, where the change happens


def figure(path: Path, version: str, curves: list[dict]) -> None:
    """Best induction score (solid, left axis) and held-out loss (dashed, right axis) against
    step, per seed: the whole run, and its first ``ZOOM`` steps."""
    fig, panels = plt.subplots(1, 2, figsize=(9, 3.6), layout="constrained")
    for panel, last in zip(panels, (None, ZOOM), strict=True):
        loss_axis = panel.twinx()
        for index, curve in enumerate(curves):
            points = [p for p in curve["points"] if last is None or p["step"] <= last]
            steps = [p["step"] for p in points]
            seed = curve["seed"]
            panel.plot(steps, [p["induction"] for p in points], color=f"C{index}",
                       label=f"seed {seed}: best induction score")  # fmt: skip
            loss_axis.plot(steps, [p["heldout_loss"] for p in points], color=f"C{index}",
                           linestyle="--", linewidth=0.9,
                           label=f"seed {seed}: held-out loss")  # fmt: skip
        panel.set_ylim(0, 1)
        panel.set_xlabel("training step")
        panel.set_ylabel("best induction score (solid)")
        loss_axis.set_ylabel("held-out loss, nats (dashed)")
        panel.set_title("the whole run" if last is None else f"the first {last} steps")
    fig.suptitle(f"pattern, {version}: the induction score and the loss during training")
    handles = [*fig.axes[0].get_lines(), *fig.axes[2].get_lines()]  # the first panel's two axes
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=7)
    write_figure(path, fig)
    plt.close(fig)
