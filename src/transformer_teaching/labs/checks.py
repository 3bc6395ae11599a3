"""What every lab check shares: run the learner's code, compare, and name the mistake.

A check is a function of the learner's implementation. It raises :class:`LabCheckFailure`
(an ``AssertionError``) whose message says in plain words what looks wrong, the maximum
absolute error and the index where it occurs, and the inputs of the failing case.

To name a mistake, a check compares the learner's result with the correct one and, when they
differ, with the result of each known mistake (see ``transformer_teaching.labs.mistakes``): if the
learner's result equals "the scores were not divided by √d_k" to the tolerance, it says so.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

import torch
from torch import Tensor, nn

from transformer._checks import shape_str

TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-10}

# (the mistake in plain words, the result that mistake gives on the same inputs)
Mistake = tuple[str, Tensor]


class LabCheckFailure(AssertionError):
    """A lab check failed; the message names the likely mistake."""


def load_learner_module(path: str | Path) -> ModuleType:
    """Import a lab's file by path as ``<lab dir>_<file stem>``, so that labs never clash."""
    path = Path(path)
    name = f"{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"path: expected an importable Python file, got {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def describe(**tensors: Tensor | None) -> str:
    """``query (2, 5, 8) float32, mask (5, 5) bool``: the inputs of a case, for messages."""
    return ", ".join(
        f"{name} None" if t is None else f"{name} {shape_str(t.shape)} {_dtype(t)}"
        for name, t in tensors.items()
    )


def _dtype(t: Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def random_attend_mask(shape: Sequence[int], gen: torch.Generator) -> Tensor:
    """A random seed-convention bool mask (True = attend) of ``shape`` (..., S).

    Every row attends to at least one key and, when S > 1, blocks at least one, so that
    neither the mask nor its inverse blocks a whole row.
    """
    allowed = torch.rand(tuple(shape), generator=gen) > 0.5  # (..., S)
    rows = allowed.view(-1, shape[-1])  # (rows, S), a view
    index = torch.arange(rows.shape[0])  # (rows,)
    keep = torch.randint(shape[-1], (rows.shape[0],), generator=gen)  # (rows,)
    rows[index, keep] = True
    if shape[-1] > 1:
        rows[index, (keep + 1) % shape[-1]] = False
    return allowed


def _on(context: str) -> str:
    return f"\n  inputs: {context}" if context else ""


def run(
    what: str,
    fn: Callable[..., Any],
    *args: Any,
    context: str = "",
    crash_hint: str = "",
    **kwargs: Any,
) -> Any:
    """Call the learner's ``fn``; NotImplementedError and crashes become readable failures.

    ``crash_hint`` is the likely cause of a crash in this call, added to its message.
    """
    __tracebackhide__ = True
    try:
        return fn(*args, **kwargs)
    except NotImplementedError as error:
        raise LabCheckFailure(f"{what}: not implemented yet: {error}") from None
    except Exception as error:
        hint = f"\n  hint: {crash_hint}" if crash_hint else ""
        if "view size is not compatible" in str(error):
            hint = "\n  hint: after a transpose, use .reshape (or .contiguous().view)"
        raise LabCheckFailure(
            f"{what} raised {type(error).__name__}: {error}{hint}{_on(context)}"
        ) from error


def run_on_copies(
    what: str,
    fn: Callable[..., Any],
    inputs: dict[str, Tensor | None],
    *,
    context: str = "",
    crash_hint: str = "",
    **kwargs: Any,
) -> Any:
    """``run`` on copies of ``inputs`` (passed in order), and fail if it changed one in place."""
    __tracebackhide__ = True
    copies = {name: None if t is None else t.clone() for name, t in inputs.items()}
    result = run(what, fn, *copies.values(), context=context, crash_hint=crash_hint, **kwargs)
    for name, t in inputs.items():
        if t is not None and not torch.equal(copies[name], t):
            fail(f"{what} changed its input {name} in place: use out-of-place operations", context)
    return result


def expect_error(
    what: str,
    error_type: type[Exception],
    fn: Callable[..., Any],
    *args: Any,
    mentions: Sequence[str] = (),
    advice: str = "",
    context: str = "",
) -> None:
    """Raise unless ``fn(*args)`` raises ``error_type`` with each of ``mentions`` in its message.

    ``advice`` says what the error should be, for the failure message.
    """
    __tracebackhide__ = True
    expected = error_type.__name__
    try:
        fn(*args)
    except NotImplementedError as error:
        raise LabCheckFailure(f"{what}: not implemented yet: {error}") from None
    except error_type as error:
        if all(m in str(error) for m in mentions):
            return
        fail(f"{what}: the {expected} does not say what went wrong: {error}\n  {advice}", context)
    except Exception as error:
        crashed = f"{what} raised {type(error).__name__}: {error}"
        fail(f"{crashed}\n  expected a {expected}: {advice}", context)
    fail(f"{what}: expected a {expected}, but it returned a result: {advice}", context)


def fail(message: str, context: str = "") -> NoReturn:
    """Raise a LabCheckFailure with the case's inputs appended."""
    __tracebackhide__ = True
    raise LabCheckFailure(f"{message}{_on(context)}")


def expect_tensor(what: str, value: object, context: str = "") -> Tensor:
    __tracebackhide__ = True
    if not isinstance(value, Tensor):
        fail(f"{what}: expected a torch.Tensor, got {type(value).__name__}", context)
    return value


def expect_pair(what: str, value: object, names: str, context: str = "") -> tuple[Any, Any]:
    """The learner returned a 2-tuple, e.g. ``(output, weights)``."""
    __tracebackhide__ = True
    if not isinstance(value, tuple | list) or len(value) != 2:
        fail(f"{what}: expected a tuple {names}, got {type(value).__name__}", context)
    return value[0], value[1]


def expect_shape(
    what: str, tensor: Tensor, shape: Sequence[int], layout: str, context: str = ""
) -> None:
    """Raise unless ``tensor.shape == shape``; ``layout`` names the axes, e.g. (B, H, T, D)."""
    __tracebackhide__ = True
    if tuple(tensor.shape) != tuple(shape):
        expected = f"{shape_str(shape)} {layout}".rstrip()
        fail(f"{what}: expected shape {expected}, got {shape_str(tensor.shape)}", context)


def max_abs_error(actual: Tensor, expected: Tensor) -> tuple[float, tuple[int, ...]]:
    """Largest |actual - expected| and its index; NaN on one side only counts as inf."""
    a = actual.detach().cpu().double()
    e = expected.detach().cpu().double()
    diff = (a - e).abs()
    diff = torch.where((a == e) | (a.isnan() & e.isnan()), 0.0, diff)  # equal infinities, NaNs
    diff = torch.nan_to_num(diff, nan=float("inf"))  # NaN on one side only
    flat = int(diff.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), diff.shape))
    return float(diff.reshape(-1)[flat]), index


def _value(t: Tensor, index: tuple[int, ...]) -> str:
    item = t[index].item()
    return f"{item:.4g}" if isinstance(item, float) else str(item)


def error_report(
    actual: Tensor, expected: Tensor, names: tuple[str, str] = ("yours", "expected")
) -> str:
    """``max abs error 0.41 at index (1, 0, 3, 2): yours 0.12, expected 0.53``."""
    err, index = max_abs_error(actual, expected)
    return (
        f"max abs error {err:.3g} at index {index}: "
        f"{names[0]} {_value(actual, index)}, {names[1]} {_value(expected, index)}"
    )


def matches(actual: Tensor, other: Tensor, tol: float) -> bool:
    """Equal within ``tol``, ignoring positions where ``actual`` is NaN (not all of them).

    The mistakes are computed with zero weights for fully blocked rows; a learner's plain
    softmax gives NaN there, and that should not hide which mistake it is.
    """
    if actual.shape != other.shape:
        return False
    a, o = actual.detach().cpu().double(), other.detach().cpu().double()
    nan = a.isnan()
    if bool(nan.all()):
        return False
    return bool(((a - o).abs() <= tol)[~nan].all())


def compare(
    what: str,
    actual: Tensor,
    expected: Tensor,
    mistakes: Sequence[Mistake] = (),
    context: str = "",
) -> None:
    """Raise unless ``actual`` equals ``expected`` to the dtype's tolerance.

    On a mismatch the message names the first of ``mistakes`` whose result ``actual`` equals,
    and always gives the maximum absolute error and where it occurs.
    """
    __tracebackhide__ = True
    expect_shape(what, actual, expected.shape, "", context)
    tol = TOLERANCE.get(expected.dtype, 1e-5)
    err, _ = max_abs_error(actual, expected)
    if err <= tol:
        return
    reason = next((text for text, wrong in mistakes if matches(actual, wrong, tol)), None)
    head = f"{what}: {reason or 'differs from the correct result'}"
    nan = (
        " (yours contains NaN: is a row of keys entirely blocked?)"
        if bool(actual.detach().isnan().any())
        else ""
    )
    fail(f"{head}\n  {error_report(actual, expected)}{nan}", context)


def load_reference(
    ours: object, state: dict[str, Tensor], what: str, reference: str, names: str, context: str
) -> nn.Module:
    """Load a reference's ``state`` dict into the learner's module (in eval mode after), or
    fail naming the parameters that are missing, unexpected or of another shape.
    ``reference`` names where the weights come from; ``names`` says how to name the parts."""
    __tracebackhide__ = True
    if not isinstance(ours, nn.Module):
        fail(f"{what}: expected an nn.Module, got {type(ours).__name__}", context)
    got = ours.state_dict()
    missing = [name for name in state if name not in got]
    unexpected = [name for name in got if name not in state]
    if missing or unexpected:
        fail(f"{what}: the parameter names differ from {reference}'s: missing {missing}, "
             f"unexpected {unexpected}; name the parts {names}", context)  # fmt: skip
    for name, tensor in state.items():
        if got[name].shape != tensor.shape:
            fail(f"{what}: {name} has shape {tuple(got[name].shape)}, {reference}'s "
                 f"{tuple(tensor.shape)}", context)  # fmt: skip
    ours.load_state_dict(state)
    return ours.eval()
