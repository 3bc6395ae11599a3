"""Lab 05 checks: the sinusoidal positional encoding, and adding it to the embeddings.

``check_sinusoidal_encoding(fn)`` compares the learner's table with
``transformer.v3_positional.sinusoidal_encoding`` to 1e-5, even and odd ``d_model``.
``check_positional_encoding(module_cls)`` checks the module that adds it to x (batch, seq,
d_model) and refuses sequences longer than ``max_len`` with a ValueError.
``check_order_aware(module_cls)``, the milestone, plugs the learner's module into v3's
model and trains it on the ``sequential`` task (the token three places back), which a model
without positions cannot learn.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import Tensor, nn

from transformer.contract import ModelConfig
from transformer.experiments.runner import TASK_TRAINING, evaluate, sampler
from transformer.experiments.tasks import get_task
from transformer.lm import train
from transformer.v3_positional import PositionalModel, sinusoidal_encoding
from transformer_teaching.labs.checks import (
    Mistake,
    compare,
    describe,
    expect_error,
    expect_shape,
    expect_tensor,
    fail,
    run,
    run_on_copies,
)
from transformer_teaching.labs.mistakes import sinusoidal_variant

EncodingFn = Callable[[int, int], Tensor]

# (the mistake in plain words, sinusoidal_variant's keywords)
TABLE_MISTAKES: list[tuple[str, dict]] = [
    (
        "sin and cos are swapped: even columns 2i hold sin, odd columns 2i+1 hold cos",
        {"sin_on_even": False},
    ),
    (
        "the sines and cosines are concatenated (all sines, then all cosines); the paper "
        "interleaves them: column 2i is sin, column 2i+1 is cos of the same angle",
        {"interleave": False},
    ),
    (
        "the exponent uses the pair index i where the paper has 2i: 10000^(2i/d_model), "
        "with 2i = 0, 2, 4, ... the even column index",
        {"exponent": "i/d"},
    ),
    (
        "the exponent uses each column's own index, so column 2i+1 turns at a different "
        "rate from column 2i: both columns of a pair use 10000^(2i/d_model)",
        {"exponent": "j/d"},
    ),
    (
        "the exponent is not divided by d_model: 10000^(2i/d_model), not 10000^(2i)",
        {"exponent": "2i"},
    ),
    (
        "the position is multiplied by 10000^(2i/d_model) instead of divided by it: with "
        "exp(), the exponent is -(2i/d_model)·ln(10000)",
        {"divide": False},
    ),
    ("the base is 1000: the paper uses 10000", {"base": 1000.0}),
    (
        "the base is 100000: 10e4 means 10·10⁴; write 10000.0 (or 1e4)",
        {"base": 100000.0},
    ),
    (
        "positions start at 1: the first position is 0, so row 0 is sin(0) = 0, cos(0) = 1",
        {"first_position": 1},
    ),
]

# (max_len, d_model): even sizes first, then odd ones
TABLE_SIZES = [(10, 8), (50, 16), (7, 5), (1, 4), (16, 1), (33, 7), (64, 32), (20, 2)]


def table_mistakes(max_len: int, d_model: int) -> list[Mistake]:
    """Each common mistake in words, with the (max_len, d_model) table it gives."""
    wrong = [(text, sinusoidal_variant(max_len, d_model, **kw)) for text, kw in TABLE_MISTAKES]
    return [(text, table.float()) for text, table in wrong]


def _odd_hint(d_model: int) -> str:
    if d_model % 2 == 0:
        return ""
    return (
        f"d_model = {d_model} is odd: there are {(d_model + 1) // 2} sine columns "
        f"(0, 2, ..., {d_model - 1}) and only {d_model // 2} cosine columns; give the cosines "
        f"the first d_model // 2 angles, angle[:, : d_model // 2]"
    )


def check_sinusoidal_encoding(encoding_fn: EncodingFn) -> None:
    """Lab 05: ``encoding_fn(max_len, d_model) -> (max_len, d_model)`` like v3's table."""
    __tracebackhide__ = True
    what = "sinusoidal_encoding()"
    for max_len, d_model in TABLE_SIZES:
        ctx = f"max_len {max_len}, d_model {d_model}"
        hint = _odd_hint(d_model)
        table = run(what, encoding_fn, max_len, d_model, context=ctx, crash_hint=hint)
        table = expect_tensor(what, table, ctx)  # (max_len, d_model)
        if tuple(table.shape) == (max_len, d_model + 1) and hint:
            got = tuple(table.shape)
            fail(f"{what}: expected shape ({max_len}, {d_model}), got {got}: {hint}", ctx)
        expect_shape(what, table, (max_len, d_model), "(max_len, d_model)", ctx)
        if not table.dtype.is_floating_point:
            fail(f"{what}: expected a floating-point table, got dtype {table.dtype}", ctx)
        expected = sinusoidal_encoding(max_len, d_model)  # (max_len, d_model)
        compare(what, table.float(), expected, table_mistakes(max_len, d_model), ctx)


# (max_len, d_model, batch, seq_len): the table is longer than x, then as long, then odd
MODULE_CASES = [(16, 8, 2, 5), (10, 6, 3, 10), (20, 7, 2, 9), (12, 16, 1, 1), (9, 4, 4, 7)]


def _build(module_cls: Callable[[int, int], nn.Module], max_len: int, d_model: int) -> nn.Module:
    __tracebackhide__ = True
    what = f"SinusoidalPositionalEncoding({max_len}, {d_model})"
    module = run(what, module_cls, max_len, d_model, crash_hint=_odd_hint(d_model))
    if not isinstance(module, nn.Module):
        fail(f"{what}: expected an nn.Module, got {type(module).__name__}")
    return module


def module_mistakes(x: Tensor, max_len: int) -> list[Mistake]:
    """x (B, T, d_model) -> each common mistake in words, with the output it gives."""
    seq_len, d_model = x.shape[1:]
    table = sinusoidal_encoding(max_len, d_model)[:seq_len]  # (T, d_model)
    wrong: list[Mistake] = [
        ("the positions are not added: return x + pe[:seq_len]", x),
        ("only the positions are returned: return x + pe[:seq_len], not pe[:seq_len]", table),
        (
            "x is scaled by √d_model: that scaling belongs to the embedding (v3 leaves it off); "
            "return x + pe[:seq_len]",
            x * d_model**0.5 + table,
        ),
        (
            f"every position got position 0's vector: slice the table's rows, pe[:seq_len] "
            f"with seq_len = x.shape[1] = {seq_len}",
            x + table[:1],
        ),
    ]
    return wrong + [(text, x + t[:seq_len]) for text, t in table_mistakes(max_len, d_model)]


def check_positional_encoding(module_cls: Callable[[int, int], nn.Module]) -> None:
    """Lab 05: ``module_cls(max_len, d_model)(x (B, T, d_model))`` is x + PE[:T]; T > max_len
    raises a ValueError naming seq_len and max_len."""
    __tracebackhide__ = True
    for seed, (max_len, d_model, batch, seq_len) in enumerate(MODULE_CASES):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(batch, seq_len, d_model, generator=gen)  # (B, T, d_model)
        ctx = f"max_len {max_len}, d_model {d_model}, " + describe(x=x)
        module = _build(module_cls, max_len, d_model)
        what = f"SinusoidalPositionalEncoding({max_len}, {d_model}).forward()"
        if any(p.requires_grad for p in module.parameters()):
            fail(
                f"{what}: the table is a trainable nn.Parameter; the sinusoids are fixed: "
                "store them with self.register_buffer('pe', table)",
                ctx,
            )
        hint = (
            "seq_len == max_len is allowed: raise only when seq_len > max_len"
            if seq_len == max_len
            else "is the whole table added? add its first seq_len rows, pe[: x.shape[1]]"
        )
        module.eval()
        with torch.no_grad():
            out = run_on_copies(what, module, {"x": x}, context=ctx, crash_hint=hint)
        out = expect_tensor(what, out, ctx)  # (B, T, d_model)
        expect_shape(what, out, x.shape, "(batch, seq_len, d_model) like x", ctx)
        if out.dtype != x.dtype:
            fail(
                f"{what}: expected dtype {x.dtype} like x, got {out.dtype}: build the table in "
                "the default dtype (torch.get_default_dtype()) or add pe.to(x.dtype)",
                ctx,
            )
        expected = x + sinusoidal_encoding(max_len, d_model)[:seq_len]  # (B, T, d_model)
        compare(what, out, expected, module_mistakes(x, max_len), ctx)
        too_long = torch.randn(batch, max_len + 1 + seed, d_model, generator=gen)
        expect_error(
            what,
            ValueError,
            module,
            too_long,
            mentions=(str(max_len + 1 + seed), str(max_len)),
            advice=(
                "when seq_len > max_len, raise a ValueError that names both, e.g. "
                "f'seq_len {seq_len} > max_len {self.max_len}', before slicing the table"
            ),
            context=f"max_len {max_len}, d_model {d_model}, " + describe(x=too_long),
        )


ORDER_TASK = "sequential"
ORDER_MODEL = {"d_model": 16, "num_heads": 2, "num_layers": 1}
ORDER_TRAINING = replace(
    TASK_TRAINING,
    steps=80,
    batch_size=32,
    learning_rate=2e-2,
    min_learning_rate=2e-2,
    eval_interval=80,
    eval_batches=1,
)
ORDER_SEQUENCES = 500
ORDER_ACCURACY = 0.9


def check_order_aware(module_cls: Callable[[int, int], nn.Module]) -> None:
    """Lab 05 milestone: with the learner's positions, v3's model learns the ``sequential``
    task (output the token three places back) to ``ORDER_ACCURACY`` on held-out sequences."""
    __tracebackhide__ = True
    task = get_task(ORDER_TASK)
    config = ModelConfig(vocab_size=task.vocab_size, max_len=task.seq_len, **ORDER_MODEL)
    torch.manual_seed(0)
    model = PositionalModel(config)
    model.positions = _build(module_cls, config.max_len, config.d_model)
    ctx = (
        f"task {ORDER_TASK} ({task.description}), {ORDER_TRAINING.steps} steps of "
        f"{ORDER_TRAINING.batch_size} sequences, {config}"
    )
    cpu = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    what = "training v3's model with your SinusoidalPositionalEncoding"
    batches = sampler(task, "train")
    run(what, train, model, batches, {}, ORDER_TRAINING, gen, progress=False, context=ctx)
    measured, _, _ = evaluate(model, task, ORDER_SEQUENCES, 0, cpu)
    if measured["accuracy"] < ORDER_ACCURACY:
        fail(
            f"milestone: with your positions the model reaches {measured['accuracy']:.1%} on "
            f"held-out sequences, expected at least {ORDER_ACCURACY:.0%}: it still cannot tell "
            "positions apart well enough to find the token three places back; check that "
            "forward returns x + pe[:seq_len]",
            ctx,
        )
