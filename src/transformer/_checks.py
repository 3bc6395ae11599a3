"""Argument checks shared by every stage.

Every error names the argument, what was expected and what came, for example
``key_padding_mask: expected shape (batch=2, src_len=7), got (7, 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor


def shape_str(shape: Sequence[int]) -> str:
    """``(2, 7)`` for a shape, ``(5,)`` for one dimension."""
    return str(tuple(int(s) for s in shape))


def named_shape(**sizes: int) -> str:
    """``(batch=2, src_len=7)``: the expected shape with its dimension names."""
    return "(" + ", ".join(f"{name}={size}" for name, size in sizes.items()) + ")"


def check_tensor(name: str, value: object) -> Tensor:
    if not isinstance(value, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    return value


def check_rank(name: str, tensor: Tensor, ranks: Sequence[int], layout: str) -> None:
    """Raise unless ``tensor.dim()`` is one of ``ranks``; ``layout`` describes the expected axes."""
    check_tensor(name, tensor)
    if tensor.dim() not in ranks:
        wanted = " or ".join(f"{r}-D" for r in ranks)
        raise ValueError(
            f"{name}: expected a {wanted} tensor {layout}, "
            f"got {tensor.dim()}-D with shape {shape_str(tensor.shape)}"
        )


def check_shape(name: str, tensor: Tensor, **sizes: int) -> None:
    """Raise unless ``tensor.shape`` equals the named sizes, in order."""
    if tuple(tensor.shape) != tuple(sizes.values()):
        raise ValueError(
            f"{name}: expected shape {named_shape(**sizes)}, got {shape_str(tensor.shape)}"
        )


def check_size(name: str, tensor: Tensor, dim: int, size: int, what: str) -> None:
    """Raise unless ``tensor.shape[dim] == size``; ``what`` names that dimension."""
    if tensor.shape[dim] != size:
        raise ValueError(
            f"{name}: expected {what} = {size} (dim {dim}), "
            f"got {tensor.shape[dim]} in shape {shape_str(tensor.shape)}"
        )


def check_floating(name: str, tensor: Tensor) -> None:
    if not tensor.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {tensor.dtype}")


def check_same_dtype(name: str, tensor: Tensor, dtype: torch.dtype, source: str) -> None:
    if tensor.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} ({source}), got {tensor.dtype}")


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return value


def check_probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name}: expected a float in [0, 1), got {value!r}")
    return float(value)


def check_divisible(name: str, value: int, divisor_name: str, divisor: int) -> None:
    if value % divisor != 0:
        raise ValueError(
            f"{name}: expected a multiple of {divisor_name}={divisor}, got {value} "
            f"({value} / {divisor} = {value / divisor:.3g} is not a whole head size)"
        )


def check_token_ids(name: str, tokens: object, vocab_size: int) -> Tensor:
    """Raise unless ``tokens`` is an integer (batch, seq_len >= 1) tensor of ids < vocab_size."""
    check_tensor(name, tokens)
    check_rank(name, tokens, (2,), "of token ids (batch, seq_len)")
    if tokens.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name}: expected integer token ids (torch.long), got {tokens.dtype}")
    if tokens.shape[0] == 0 or tokens.shape[1] == 0:
        raise ValueError(
            f"{name}: expected at least one sequence of at least one token (batch >= 1, "
            f"seq_len >= 1), got shape {shape_str(tokens.shape)}"
        )
    if torch.compiler.is_compiling():  # no host sync inside a graph: the device checks it
        in_range = ((tokens >= 0) & (tokens < vocab_size)).all()  # () bool
        torch._assert_async(in_range, f"{name}: expected ids in [0, vocab_size={vocab_size})")
        return tokens
    low, high = (int(v) for v in torch.aminmax(tokens))
    if low < 0 or high >= vocab_size:
        raise ValueError(
            f"{name}: expected ids in [0, vocab_size={vocab_size}), got values from {low} to {high}"
        )
    return tokens


def check_number(name: str, value: object, low: float, high: float = math.inf) -> float:
    """Raise unless ``value`` is a real number with ``low <= value < high``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value < high:
        wanted = f"a number >= {low}" if high == math.inf else f"a number in [{low}, {high})"
        raise ValueError(f"{name}: expected {wanted}, got {value!r}")
    return float(value)


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected a bool, got {value!r}")
    return value


def check_seq_len(name: str, seq_len: int, limit: int, limit_name: str, hint: str) -> None:
    """Raise unless ``seq_len <= limit``; the one sequence-length check of every stage."""
    if seq_len > limit:
        raise ValueError(
            f"{name}: expected seq_len <= {limit_name}={limit}, got seq_len={seq_len}; {hint}"
        )
