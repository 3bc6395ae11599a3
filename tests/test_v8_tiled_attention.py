"""v8's tiled attention against SDPA: outputs and gradients, every mask, many shapes."""

import math
import random

import pytest
import torch
import torch.nn.functional as F

from transformer.v8_efficient import tiled_attention

TOL = 1e-5


def random_case(rng: random.Random) -> dict:
    """A random shape, block size (often not dividing T) and mask kind."""
    causal = rng.random() < 0.5
    t_q = rng.randint(1, 40)
    t_k = t_q if causal and rng.random() < 0.7 else rng.randint(1, 40)
    return {
        "batch": rng.randint(1, 3),
        "heads": rng.randint(1, 4),
        "t_q": t_q,
        "t_k": t_k,
        "dim": rng.choice([1, 4, 8, 16]),
        "dim_v": rng.choice([1, 4, 8, 16]),
        "block": rng.choice([1, 3, 4, 7, 16, 64]),
        "causal": causal,
        "mask": rng.choice([None, "padding", "full"]),
    }


def attend_mask(case: dict, generator: torch.Generator) -> torch.Tensor | None:
    """None, a key padding mask (B, 1, 1, T_k) or a full mask (B, H, T_q, T_k): True = attend."""
    b, h, t_q, t_k = case["batch"], case["heads"], case["t_q"], case["t_k"]
    if case["mask"] is None:
        return None
    if case["mask"] == "padding":
        lengths = torch.randint(1, t_k + 1, (b,), generator=generator)  # (B,)
        return (torch.arange(t_k) < lengths[:, None]).view(b, 1, 1, t_k)  # (B, 1, 1, T_k)
    return torch.rand(b, h, t_q, t_k, generator=generator) < 0.7  # (B, H, T_q, T_k)


def reference_mask(case: dict, mask: torch.Tensor | None) -> torch.Tensor:
    """The whole (B, H, T_q, T_k) attend mask, causal part included, for SDPA."""
    b, h, t_q, t_k = case["batch"], case["heads"], case["t_q"], case["t_k"]
    full = torch.ones(b, h, t_q, t_k, dtype=torch.bool)
    if case["causal"]:
        full &= torch.ones(t_q, t_k, dtype=torch.bool).tril()  # SDPA's is_causal: j <= i
    return full if mask is None else full & mask


def inputs(case: dict, generator: torch.Generator, dtype=torch.float32):
    b, h, t_q, t_k = case["batch"], case["heads"], case["t_q"], case["t_k"]
    q = torch.randn(b, h, t_q, case["dim"], generator=generator, dtype=dtype)
    k = torch.randn(b, h, t_k, case["dim"], generator=generator, dtype=dtype)
    v = torch.randn(b, h, t_k, case["dim_v"], generator=generator, dtype=dtype)
    return [x.requires_grad_() for x in (q, k, v)]


CASES = [random_case(random.Random(i)) for i in range(60)]


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_outputs_and_gradients_equal_sdpa(case):
    generator = torch.Generator().manual_seed(hash(str(case)) % 2**31)
    q, k, v = inputs(case, generator)
    mask = attend_mask(case, generator)
    full = reference_mask(case, mask)
    live = full.any(dim=-1)  # (B, H, T_q) queries with at least one key: SDPA is defined there
    ours = tiled_attention(q, k, v, mask, causal=case["causal"], block_size=case["block"])
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=full)
    ref = torch.where(live.unsqueeze(-1), ref, 0.0)  # SDPA's NaN rows -> our zeros
    torch.testing.assert_close(ours, ref, atol=TOL, rtol=0)
    grad = torch.randn(ours.shape, generator=generator)
    ours_grads = torch.autograd.grad(ours, (q, k, v), grad)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad)
    for name, a, b in zip("qkv", ours_grads, ref_grads, strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=0, msg=lambda m, n=name: f"d{n}: {m}")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mask_kind", [None, "padding", "full"])
def test_gradcheck_in_float64(causal, mask_kind):
    case = {"batch": 2, "heads": 2, "t_q": 7, "t_k": 7, "dim": 3, "dim_v": 2, "block": 3,
            "causal": causal, "mask": mask_kind}  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    q, k, v = inputs(case, generator, torch.float64)
    mask = attend_mask(case, generator)
    if mask is not None:
        mask[..., 0] = True  # every query keeps a key, so the function is smooth everywhere

    def attend(q, k, v):
        return tiled_attention(q, k, v, mask, causal=causal, block_size=3)

    assert torch.autograd.gradcheck(attend, (q, k, v))


def test_a_query_with_no_key_gets_zeros_and_no_nan_gradients():
    q, k, v = (torch.randn(1, 1, 4, 2, requires_grad=True) for _ in range(3))
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    mask[..., 1, :] = False  # query 1 may attend to nothing
    out = tiled_attention(q, k, v, mask, block_size=2)
    assert torch.equal(out[0, 0, 1], torch.zeros(2))
    out.sum().backward()
    assert torch.equal(q.grad[0, 0, 1], torch.zeros(2))
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v))


def test_the_backward_pass_keeps_no_score_matrix():
    """What autograd saves is O(T): q, k, v, the output and one number per query."""
    t = 64
    q, k, v = (torch.randn(1, 2, t, 8, requires_grad=True) for _ in range(3))
    saved = []

    def pack(x):
        saved.append(tuple(x.shape))
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        out = tiled_attention(q, k, v, causal=True, block_size=16)
    out.sum().backward()
    assert saved and all(shape[-2:] != (t, t) and math.prod(shape) <= 2 * t * 8 for shape in saved)


def test_one_block_or_many_give_the_same_numbers():
    q, k, v = (torch.randn(2, 3, 37, 8) for _ in range(3))
    one = tiled_attention(q, k, v, causal=True, block_size=64)
    for block in (1, 5, 36, 37):
        torch.testing.assert_close(tiled_attention(q, k, v, causal=True, block_size=block), one)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda q: tiled_attention(q[0], q, q), ValueError,
         r"query: expected a 4-D tensor \(batch, heads, seq, head_dim\), got 3-D"),
        (lambda q: tiled_attention(q, q[..., :3], q), ValueError,
         r"query, key, value: expected \(B, H, T_q, D\), \(B, H, T_k, D\) and \(B, H, T_k, D_v\)"),
        (lambda q: tiled_attention(q, q, q, torch.ones(5, 5)), TypeError,
         r"attend_mask: expected a bool tensor \(True = attend\), got torch.float32"),
        (lambda q: tiled_attention(q, q, q, torch.ones(3, 5, dtype=torch.bool)), ValueError,
         r"attend_mask: expected a shape that broadcasts to \(B, H, T_q, T_k\) = \(2, 3, 5, 5\), "
         r"got \(3, 5\)"),
        (lambda q: tiled_attention(q.long(), q, q), TypeError,
         "query: expected a floating-point tensor, got dtype torch.int64"),
        (lambda q: tiled_attention(q, q.double(), q), TypeError,
         r"key: expected dtype torch.float32 \(query's dtype\), got torch.float64"),
        (lambda q: tiled_attention(q, q, q, block_size=0), ValueError,
         "block_size: expected a positive integer, got 0"),
    ],
)  # fmt: skip
def test_bad_arguments_name_themselves(call, error, message):
    with pytest.raises(error, match=message):
        call(torch.randn(2, 3, 5, 4))
