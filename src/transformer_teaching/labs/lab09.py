"""Lab 09 checks: a GPT of your own, against Hugging Face's GPT-2 built offline.

* ``check_block``: the learner's ``CausalBlock(d_model, n_head)`` (GPT-2's pre-norm block,
  names ``norm1``, ``self_attn``, ``norm2``, ``linear1``, ``linear2``) loads a GPT-2 block's
  weights and equals it within 1e-5;
* ``check_gpt``: the learner's ``GPT(vocab_size, n_positions, d_model, n_layer, n_head)``
  (``wte``, ``wpe``, ``h``, ``ln_f``, ``lm_head``) loads a tiny ``GPT2LMHeadModel``'s weights,
  ties its head to the token embedding, and gives its logits within 1e-5;
* ``check_generate``: the learner's ``generate(model, tokens, max_new_tokens, temperature,
  generator)`` writes the tokens of ``transformer.v5_gpt``'s loop, greedy and sampled.

The GPT-2 weights come from ``transformers.GPT2LMHeadModel`` built from a small config (no
download), converted with ``transformer.v5_gpt.from_hf_gpt2``. Mistakes are recognised by
computing them on purpose.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from transformer.v1_basic_attention import causal_mask
from transformer.v5_gpt import GPT, from_hf_gpt2
from transformer_teaching.labs.checks import (
    compare,
    describe,
    expect_shape,
    expect_tensor,
    fail,
    load_reference,
    run,
)
from transformer_teaching.labs.mistakes import block_variant

SIZES = {"vocab_size": 23, "n_positions": 12, "d_model": 16, "n_layer": 2, "n_head": 4}
NAMES = "wte, wpe, h (a ModuleList of CausalBlock), ln_f, lm_head"
BLOCK_NAMES = "norm1, self_attn (v2's MultiHeadAttention), norm2, linear1, linear2"
WEIGHT_STD = 0.15  # GPT-2's 0.02 makes a tiny model's output nearly the same for any input


def gpt2(seed: int = 0, hf_too: bool = False):
    """v5's GPT holding the weights of a tiny Hugging Face GPT-2, random biases included
    (and, with ``hf_too``, that ``GPT2LMHeadModel`` itself)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=SIZES["vocab_size"], n_positions=SIZES["n_positions"],
        n_embd=SIZES["d_model"], n_layer=SIZES["n_layer"], n_head=SIZES["n_head"],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    hf = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, parameter in hf.named_parameters():  # large enough that mistakes show
            if name.endswith("bias"):
                parameter.normal_(0.0, 0.2)
            elif "ln_" in name:
                parameter.normal_(1.0, 0.2)
            else:
                parameter.normal_(0.0, WEIGHT_STD)
    gpt = from_hf_gpt2(hf).eval()
    return (gpt, hf) if hf_too else gpt


def check_block(block_cls: Callable[..., nn.Module]) -> None:
    """Lab 09: ``block_cls(d_model, n_head)(x)`` is GPT-2's causal pre-norm block."""
    __tracebackhide__ = True
    reference = gpt2().h[0]  # v4's block as GPT-2 configures it (pre-norm, GELU tanh)
    d, heads = SIZES["d_model"], SIZES["n_head"]
    ctx = f"CausalBlock({d}, {heads}), loaded from GPT-2's first block"
    ours = run(f"CausalBlock({d}, {heads})", block_cls, d, heads, context=ctx)
    load_reference(ours, reference.state_dict(), "CausalBlock", "GPT-2 (as v5 names it)",
                   BLOCK_NAMES, ctx)  # fmt: skip
    x = torch.randn(2, 7, d, generator=torch.Generator().manual_seed(1))  # (B, T, E)
    ctx = f"{ctx}, {describe(x=x)}"
    with torch.no_grad():
        out = expect_tensor("CausalBlock.forward()", run("CausalBlock.forward()", ours, x.clone(),
                                                          context=ctx), ctx)  # fmt: skip
        blocked = ~causal_mask(7)  # (T, T) True = blocked
        expected = reference(x, is_causal=True)
        mistakes = [
            ("the block is not causal: position t reads the tokens after it; pass a causal "
             "mask (True above the diagonal) as attn_mask", block_variant(reference, x)),
            ("this is a post-norm block: GPT-2 normalises each sublayer's input, "
             "x = x + attention(norm1(x)), then x = x + mlp(norm2(x))",
             block_variant(reference, x, blocked, norm_first=False)),
            ("the GELU is the exact one: GPT-2's is the tanh approximation, "
             "F.gelu(x, approximate='tanh')",
             block_variant(reference, x, blocked, activation="gelu")),
            ("the residual connections are missing: x = x + sublayer(norm(x))",
             block_variant(reference, x, blocked, no_residual=("attention", "feed_forward"))),
        ]  # fmt: skip
    expect_shape("CausalBlock.forward()", out, x.shape, "like x (B, T, E)", ctx)
    compare("CausalBlock.forward()", out, expected, mistakes, ctx)


def _logits(gpt: GPT, tokens: Tensor, *, positions: bool = True, final_norm: bool = True):
    """v5's GPT forward, optionally without positions or without the final LayerNorm."""
    x = gpt.wte(tokens)  # (B, T, E)
    if positions:
        x = gpt.wpe(x)  # adds the position vectors
    for block in gpt.h:
        x = block(x, is_causal=True)  # (B, T, E)
    return gpt.lm_head(gpt.ln_f(x) if final_norm else x)  # (B, T, V)


def check_gpt(gpt_cls: Callable[..., nn.Module]) -> None:
    """Lab 09: the learner's GPT loads GPT-2's weights, ties its head, gives its logits."""
    __tracebackhide__ = True
    reference, hf = gpt2(seed=2, hf_too=True)
    signature = "GPT(" + ", ".join(f"{k}={v}" for k, v in SIZES.items()) + ")"
    ours = run(signature, gpt_cls, **SIZES, context=signature)
    state = {k: v for k, v in reference.state_dict().items()}
    load_reference(ours, state, "GPT", "GPT-2 (as v5 names it)", NAMES, signature)
    head, table = getattr(ours, "lm_head", None), getattr(ours, "wte", None)
    if head is None or table is None or head.weight.data_ptr() != table.weight.data_ptr():
        untied = (
            "GPT: the head is not tied: one matrix reads and writes tokens, so set "
            "self.lm_head.weight = self.wte.weight (GPT-2 has no separate head)"
        )
        fail(untied, signature)
    tokens = torch.randint(
        0, SIZES["vocab_size"], (2, 10), generator=torch.Generator().manual_seed(3)
    )
    ctx = f"{signature}, loaded from a tiny GPT2LMHeadModel, {describe(tokens=tokens)}"
    with torch.no_grad():
        out = expect_tensor("GPT.forward()", run("GPT.forward()", ours, tokens, context=ctx), ctx)
        expected = hf(tokens).logits  # Hugging Face's GPT2LMHeadModel itself
        mistakes = [
            ("the positions are not added: x = wte(tokens) + wpe(positions), positions "
             "0 .. T-1", _logits(reference, tokens, positions=False)),
            ("the final LayerNorm is missing: logits = lm_head(ln_f(x))",
             _logits(reference, tokens, final_norm=False)),
        ]  # fmt: skip
    expect_shape("GPT.forward()", out, (*tokens.shape, SIZES["vocab_size"]), "(B, T, vocab)", ctx)
    compare("GPT.forward()", out, expected, mistakes, ctx)


def _generate(model: GPT, tokens: Tensor, steps: int, temperature: float, seed: int, *,
              position: int = -1, after_softmax: bool = False) -> Tensor:  # fmt: skip
    """The reference loop, optionally with the logits of the wrong position or the
    temperature applied to the probabilities (where sampling ignores it)."""
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        logits = model(tokens[:, -SIZES["n_positions"] :])[:, position]  # (B, V)
        if temperature == 0:
            chosen = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            probs = (logits.softmax(-1) / temperature if after_softmax
                     else (logits / temperature).softmax(-1))  # fmt: skip
            chosen = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        tokens = torch.cat([tokens, chosen], dim=1)  # (B, T + 1)
    return tokens


def check_generate(generate: Callable[..., Tensor]) -> None:
    """Lab 09: ``generate(model, tokens, max_new_tokens, temperature, generator)``."""
    __tracebackhide__ = True
    model = gpt2(seed=4)
    prompt = torch.tensor([[1, 2, 3], [4, 5, 6]])  # (B, T)
    for temperature, steps in ((0.0, 6), (0.5, 6), (1.5, 12)):
        ctx = f"generate(model, {describe(tokens=prompt)}, max_new_tokens={steps}, " \
              f"temperature={temperature}, generator seeded 7), model a tiny GPT-2"  # fmt: skip
        what = "generate()"
        with torch.no_grad():
            hint = "keep the last model.config.n_positions tokens: tokens[:, -n_positions:]"
            out = expect_tensor(what, run(what, generate, model, prompt.clone(), steps,
                                          temperature, torch.Generator().manual_seed(7),
                                          context=ctx, crash_hint=hint), ctx)  # fmt: skip
            expected = _generate(model, prompt, steps, temperature, 7)
            wrong = [
                ("the logits are taken from the first position: the next token is predicted "
                 "by the last one, logits[:, -1]", {"position": 0}),
            ]  # fmt: skip
            if temperature:
                wrong.append(("the temperature is applied after the softmax, where sampling "
                              "ignores it: divide the logits by it, then take the softmax",
                              {"after_softmax": True}))  # fmt: skip
            mistakes = [(t, _generate(model, prompt, steps, temperature, 7, **kw))
                        for t, kw in wrong]  # fmt: skip
        expect_shape(what, out, expected.shape, "(B, T + max_new_tokens)", ctx)
        if not torch.equal(out, expected):
            reason = next((t for t, m in mistakes if torch.equal(out, m)), None)
            fail(f"{what}: {reason or 'the tokens differ from the reference loop'}"
                 f"\n  yours {out.tolist()}\n  expected {expected.tolist()}", ctx)  # fmt: skip
