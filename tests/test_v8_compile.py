"""torch.compile: v5's, v7's and v8's forward passes compile as one graph (``fullgraph=True``),
with their input checks, and give eager's numbers; so do their training steps.

Inductor compiles C++ on CPU; where no C++ compiler is installed these tests skip and say
which package to install.
"""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F

from tests.reference import assert_close
from tests.test_v7_modern import randomise, tokens
from transformer.v5_gpt import GPT, GPTConfig
from transformer.v7_modern import ModernConfig, ModernGPT
from transformer.v8_efficient import EfficientGPT

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not any(shutil.which(c) for c in ("g++", "c++", "clang++")),
        reason="torch.compile needs a C++ compiler on CPU: apt-get install g++",
    ),
]

VOCAB = 23


def model(kind: str) -> torch.nn.Module:
    """A tiny random model of each stage (dropout 0, so eager and compiled draw nothing)."""
    torch.manual_seed(0)
    sizes = {"vocab_size": VOCAB, "n_positions": 16, "n_embd": 32, "n_layer": 2, "n_head": 4}
    zero = {"embd_pdrop": 0.0, "attn_pdrop": 0.0, "resid_pdrop": 0.0}
    if kind == "v5":
        return randomise(GPT(GPTConfig(**sizes, **zero)), 0)
    v7 = randomise(ModernGPT(ModernConfig.llama(**sizes, n_kv_head=2, **zero)), 0)
    if kind == "v7":
        return v7
    return EfficientGPT.from_model(v7, attention="tiled" if kind == "v8-tiled" else "sdpa")


KINDS = ["v5", "v7", "v8", "v8-tiled"]


@pytest.fixture(autouse=True)
def fresh_compiler():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("kind", KINDS)
def test_the_forward_pass_is_one_graph_and_equals_eager(kind):
    m = model(kind).eval()
    compiled = torch.compile(m, fullgraph=True)  # a graph break raises
    idx = tokens(1, VOCAB, 16, batch=3)
    with torch.no_grad():
        assert_close(compiled(idx), m(idx), f"{kind} compiled logits")


def test_the_token_check_stays_inside_the_graph():
    compiled = torch.compile(model("v5").eval(), fullgraph=True)
    idx = tokens(1, VOCAB, 8)
    compiled(idx)
    with pytest.raises(RuntimeError, match=r"idx: expected ids in \[0, vocab_size=23\)"):
        compiled(idx.clone().fill_(VOCAB))


@pytest.mark.parametrize("kind", ["v5", "v7", "v8-tiled"])
def test_a_compiled_training_step_gives_eager_gradients(kind):
    idx = tokens(2, VOCAB, 16, batch=3)

    def loss_of(m: torch.nn.Module) -> torch.Tensor:
        logits = m(idx[:, :-1])  # (B, T-1, V)
        return F.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten())

    grads = []
    for compile_it in (False, True):
        m = model(kind).train()
        step = torch.compile(loss_of, fullgraph=True) if compile_it else loss_of
        loss = step(m)
        loss.backward()
        grads.append((loss.detach(), {n: p.grad for n, p in m.named_parameters()}))
    assert_close(grads[1][0], grads[0][0], f"{kind} compiled loss")
    for name, grad in grads[0][1].items():
        assert_close(grads[1][1][name], grad, f"{kind} compiled grad of {name}")
