"""Forward+backward time and peak memory of our transformer block against PyTorch's, side by side.

Two pairs, ``v4_block.TransformerBlock`` vs ``nn.TransformerEncoderLayer``, post-norm
(``norm_first=False``, the default of both) and pre-norm (``norm_first=True``). Both are
built with the same arguments (ReLU, ``batch_first=True``, ``dropout`` 0.1 by default), and
ours loads the reference's state dict, so weights and inputs are identical.

Before anything is measured, the outputs of each pair are compared in eval mode (dropout
off) and must agree to 1e-5, so the two sides compute the same thing; the run stops with
status 1 otherwise. The comparison keeps gradients on: under ``torch.no_grad()`` the
reference switches to a fused inference kernel that the timed step never uses.

The measured step is a training step: train mode, dropout active in both, forward,
``output.sum()``, backward into the input and every parameter. The dropout masks differ
(each side draws its own), their cost does not. Measuring method, child processes and
flags are shared with ``attention.py`` (``_harness``, ``_measure``; see
``benchmarks/README.md``).

Run from the repository root::

    poetry run python benchmarks/block.py                     # CPU, plus CUDA if present
    poetry run python benchmarks/block.py --seq-lens 64 --device cpu --dropout 0
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from _cli import add_size_flags, check_size_flags
from _harness import COLUMNS, Benchmark, Workload, main
from _report import MAX_DIFF_COLUMN
from torch import nn

DTYPE = torch.float32
TOLERANCE = 1e-5

# implementation key -> label; PAIRS are (ours, reference) in table order
LABELS = {
    "v4_post": "v4 TransformerBlock, norm_first=False",
    "torch_post": "nn.TransformerEncoderLayer, norm_first=False",
    "v4_pre": "v4 TransformerBlock, norm_first=True",
    "torch_pre": "nn.TransformerEncoderLayer, norm_first=True",
}
PAIRS = [("v4_post", "torch_post"), ("v4_pre", "torch_pre")]


def build_workload(impl: str, spec: dict, device: torch.device) -> Workload:
    """Our TransformerBlock or nn.TransformerEncoderLayer, in train mode, on x (B, T, E)."""
    from transformer.v4_block import TransformerBlock

    case = spec["case"]
    options = {
        "d_model": case["d_model"],
        "nhead": case["nhead"],
        "dim_feedforward": case["dim_feedforward"],
        "dropout": case["dropout"],
        "activation": case["activation"],
        "batch_first": True,
        "norm_first": impl.endswith("_pre"),
        "dtype": DTYPE,
    }
    reference = nn.TransformerEncoderLayer(**options)
    x = torch.randn(case["batch"], spec["seq_len"], case["d_model"], dtype=DTYPE)  # (B, T, E)
    module: nn.Module = reference
    if impl.startswith("v4"):  # built after x, so x and the weights match the reference's
        module = TransformerBlock(**options)
        module.load_state_dict(reference.state_dict())
    module = module.to(device).train()
    x = x.to(device).requires_grad_()  # (B, T, E)

    def evaluate() -> torch.Tensor:
        """The output in eval mode (no dropout), gradients on as in the timed step."""
        module.eval()
        try:
            return module(x).detach()  # (B, T, E)
        finally:
            module.train()

    return Workload(lambda: module(x), [x, *module.parameters()], evaluate)  # (B, T, E)


# the block's size flags: (flag, default, what it sets)
SIZE_FLAGS = [
    ("--batch", 8, "batch size B"),
    ("--d-model", 256, "d_model, the embedding size E"),
    ("--nhead", 8, "attention heads"),
    ("--dim-feedforward", 1024, "hidden size of the feed-forward layer"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The block's sizes and dropout."""
    add_size_flags(parser, SIZE_FLAGS, 0.1, "dropout of both blocks, active in the timed step")


def validate(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """The sizes make a block; a bad one exits with status 2 through ``parser.error``."""
    check_size_flags(parser, args, SIZE_FLAGS, ("--d-model", "--nhead"))


def case_of(args: argparse.Namespace) -> dict:
    """The block's settings, for the children and the JSON."""
    return {
        "batch": args.batch,
        "d_model": args.d_model,
        "nhead": args.nhead,
        "dim_feedforward": args.dim_feedforward,
        "dropout": args.dropout,
        "activation": "relu",
        "batch_first": True,
        "dtype": str(DTYPE),
        "mode": "train (dropout active) for every measured step",
        "check": f"before measuring, outputs in eval mode agree to max |ours - ref| <= "
        f"{TOLERANCE:g} (each row's max_abs_diff)",
    }


def describe(case: dict) -> list[str]:
    """The report's lines about the sizes and the mode."""
    return [
        f"B={case['batch']}, d_model={case['d_model']}, nhead={case['nhead']}, "
        f"dim_feedforward={case['dim_feedforward']}, relu, batch_first=True; "
        "step = forward + output.sum() + backward",
        f"train mode: dropout={case['dropout']:g} active in both; first, in eval mode, the "
        f"outputs were checked to agree (max |diff| column, tolerance {TOLERANCE:g})",
    ]


BENCHMARK = Benchmark(
    script=Path(__file__).resolve(),
    description="Time and peak memory of forward+backward: our transformer block vs "
    "nn.TransformerEncoderLayer.",
    labels=LABELS,
    pairs=PAIRS,
    build=build_workload,
    case=case_of,
    describe=describe,
    default_seq_lens=[128, 512],
    add_arguments=add_arguments,
    validate=validate,
    tolerance=TOLERANCE,
    columns=[*COLUMNS, MAX_DIFF_COLUMN],
)

if __name__ == "__main__":
    main(BENCHMARK)
