"""v7_modern: v5 exactly at GPT-2's settings, Hugging Face's Llama at Llama's, and each
switch (RoPE, RMSNorm, SwiGLU, grouped-query attention) against its own definition.

Every model is tiny, random and built offline; every reference is computed here, from
v5, from ``transformers``, from PyTorch, or from the formula written out in the test.
"""

import re

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd import gradcheck
from torch.func import functional_call
from transformers import LlamaConfig, LlamaForCausalLM

from tests.reference import assert_close
from transformer import ModelConfig, get_stage
from transformer.v2_multihead import MultiHeadAttention
from transformer.v5_gpt import GPT, GPTConfig
from transformer.v7_modern import (
    GroupedQueryAttention,
    ModernBlock,
    ModernConfig,
    ModernGPT,
    RMSNorm,
    RotaryEmbedding,
    SwiGLU,
    apply_rope,
    from_gpt,
    from_v5_state_dict,
    rope_frequencies,
    rotate_half,
    swiglu_hidden_dim,
    to_v5_state_dict,
)
from transformer.v7_modern.llama import (
    config_from_hf,
    config_to_hf,
    from_hf_state_dict,
    to_hf_state_dict,
)

F64 = torch.float64


def picker(seed: int):
    gen = torch.Generator().manual_seed(seed)

    def pick(*options):
        return options[int(torch.randint(len(options), (1,), generator=gen))]

    return pick


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Move every parameter away from its initial value (zero biases and unit gains test
    nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return model


def tokens(seed: int, vocab_size: int, seq_len: int, batch: int = 2) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, seq_len), generator=gen)


def assert_very_close(actual: Tensor, expected: Tensor, what: str) -> None:
    """1e-6 absolute and relative: the same computation, possibly in another order."""
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-6, msg=lambda m: f"{what}: {m}")


# ==== 1. every switch at GPT-2's setting: v5 exactly ====


def v5_case(seed: int) -> tuple[GPTConfig, int]:
    """A random tiny v5 config and a sequence length up to its n_positions."""
    pick = picker(seed)
    n_head = pick(1, 2, 3, 4)
    config = GPTConfig(
        vocab_size=pick(7, 16, 31),
        n_positions=pick(5, 8, 13),
        n_embd=n_head * pick(2, 4, 6),
        n_layer=pick(1, 2, 3),
        n_head=n_head,
        n_inner=pick(None, 7),
        layer_norm_epsilon=pick(1e-5, 1e-3),
        embd_pdrop=0.1,
        attn_pdrop=0.2,
        resid_pdrop=0.3,
    )
    return config, pick(1, config.n_positions, max(1, config.n_positions - 2))


def modern_at_gpt2(config: GPTConfig) -> ModernConfig:
    """v5's sizes with every switch at GPT-2's setting, written out here."""
    return ModernConfig(
        vocab_size=config.vocab_size,
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_inner=config.n_inner,
        embd_pdrop=config.embd_pdrop,
        attn_pdrop=config.attn_pdrop,
        resid_pdrop=config.resid_pdrop,
        layer_norm_epsilon=config.layer_norm_epsilon,
        positions="learned",
        norm="layernorm",
        mlp="gelu",
        n_kv_head=None,
        bias=True,
        tie_word_embeddings=True,
    )


V5_SEEDS = range(8)


@pytest.mark.parametrize("seed", V5_SEEDS)
def test_gpt2_settings_load_a_v5_gpt_and_give_its_logits(seed):
    config, seq_len = v5_case(seed)
    torch.manual_seed(seed)
    gpt = randomise(GPT(config), seed).eval()
    model = from_gpt(gpt).eval()
    assert model.config == modern_at_gpt2(config)
    drops = (model.config.embd_pdrop, model.config.attn_pdrop, model.config.resid_pdrop)
    assert drops == (0.1, 0.2, 0.3)
    assert model.lm_head.weight is model.wte.weight
    idx = tokens(seed, config.vocab_size, seq_len, batch=3)
    expected = gpt(idx)
    assert_very_close(model(idx), expected, "fused logits")
    logits, maps = model.forward_with_attention(idx)
    v5_logits, v5_maps = gpt.forward_with_attention(idx)
    assert_very_close(logits, v5_logits, "explicit logits")
    assert len(maps) == len(v5_maps) == config.n_layer
    for layer, (ours, theirs) in enumerate(zip(maps, v5_maps, strict=True)):
        assert ours.shape == (3, config.n_head, seq_len, seq_len)
        assert_very_close(ours, theirs, f"attention weights of layer {layer}")

    # the same weights through from_v5_state_dict into a fresh model (strict load)
    fresh = ModernGPT(modern_at_gpt2(config))
    fresh.load_state_dict(from_v5_state_dict(gpt.state_dict()))
    assert_very_close(fresh.eval()(idx), expected, "from_v5_state_dict logits")

    # greedy generation, past n_positions (both keep the last n_positions tokens)
    prompt = idx[:2, : max(1, seq_len // 2)]
    new = config.n_positions + 3
    assert torch.equal(
        model.generate(prompt, new, temperature=0), gpt.generate(prompt, new, temperature=0)
    )


@pytest.mark.parametrize("seed", range(3))
def test_gpt2_settings_drop_out_where_v5_does(seed):
    """In training, with one seed, the dropout masks are v5's: same places, same order."""
    config, seq_len = v5_case(seed)
    torch.manual_seed(seed)
    gpt = randomise(GPT(config), seed).train()
    model = from_gpt(gpt).train()
    idx = tokens(seed, config.vocab_size, seq_len)
    for path in ("fused", "explicit"):
        torch.manual_seed(seed + 10)
        expected = gpt(idx) if path == "fused" else gpt.forward_with_attention(idx)[0]
        torch.manual_seed(seed + 10)
        actual = model(idx) if path == "fused" else model.forward_with_attention(idx)[0]
        assert_very_close(actual, expected, f"{path} path in training")


def test_from_gpt_copies_the_weights():
    config, _ = v5_case(0)
    gpt = randomise(GPT(config), 0).eval()
    model = from_gpt(gpt)
    before = model.wte.weight.detach().clone()
    with torch.no_grad():
        gpt.wte.weight.add_(1.0)
    assert torch.equal(model.wte.weight, before)


@pytest.mark.parametrize("seed", range(4))
def test_to_v5_state_dict_loads_into_a_v5_gpt(seed):
    config, seq_len = v5_case(seed + 20)
    torch.manual_seed(seed)
    model = randomise(ModernGPT(modern_at_gpt2(config)), seed).eval()
    gpt = GPT(config)
    gpt.load_state_dict(to_v5_state_dict(model.state_dict()))  # strict: v5's keys and shapes
    gpt.eval()
    idx = tokens(seed, config.vocab_size, seq_len)
    assert_very_close(model(idx), gpt(idx), "v5 logits from v7 weights")
    # round trip: every tensor comes back under its own name
    state = model.state_dict()
    back = from_v5_state_dict(to_v5_state_dict(state))
    assert list(back) == list(state)
    assert all(torch.equal(back[key], state[key]) for key in state)


def test_contract_with_gpt2_options_is_v5():
    heads = 4
    options = {
        "positions": "learned",
        "norm": "layernorm",
        "mlp": "gelu",
        "num_kv_heads": heads,
        "bias": True,
    }
    config = ModelConfig(
        vocab_size=13, d_model=16, num_heads=heads, num_layers=2, max_len=9, options=options
    )
    model = get_stage("v7").build_model(config).eval()
    assert model.gpt.config == ModernConfig(
        13, 9, 16, 2, 4, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0, n_kv_head=heads
    )
    torch.manual_seed(0)
    gpt = randomise(GPT(GPTConfig(13, 9, 16, 2, 4)), 0).eval()
    model.gpt.load_state_dict(from_v5_state_dict(gpt.state_dict()))
    idx = tokens(0, 13, 9, batch=3)
    expected = gpt(idx)
    assert_very_close(model(idx), expected, "contract logits")
    logits, maps = model(idx, return_attention=True)
    assert_very_close(logits, expected, "contract logits with maps")
    for ours, theirs in zip(maps, gpt.forward_with_attention(idx)[1], strict=True):
        assert_very_close(ours, theirs, "contract attention weights")


# ==== 2. every switch at Llama's setting: Hugging Face's LlamaForCausalLM ====

LLAMA_SEEDS = range(12)


def llama_config(seed: int, attn: str = "sdpa") -> LlamaConfig:
    """A random tiny Llama. seed % 3 picks the GQA ratio (1, 2, n_head), seed % 2 the tying,
    (seed // 3) % 3 rope_theta; seeds 4 and 9 have biases. Odd sizes on purpose."""
    pick = picker(seed)
    kind = ("mha", "gqa", "mqa")[seed % 3]
    if kind == "mha":
        n_head = pick(1, 2, 3)
        kv_heads = n_head
    elif kind == "gqa":
        kv_heads = pick(1, 2, 3)
        n_head = 2 * kv_heads
    else:
        n_head = pick(2, 3, 4)
        kv_heads = 1
    bias = seed in (4, 9)
    return LlamaConfig(
        vocab_size=pick(11, 17, 32, 33),
        hidden_size=n_head * pick(2, 4, 6),
        intermediate_size=pick(5, 7, 12, 13),
        num_hidden_layers=pick(1, 2),
        num_attention_heads=n_head,
        num_key_value_heads=kv_heads,
        max_position_embeddings=pick(9, 12, 16),
        rms_norm_eps=pick(1e-5, 1e-6, 1e-3),
        rope_theta=(10000.0, 500.0, 1e6)[(seed // 3) % 3],
        tie_word_embeddings=seed % 2 == 0,
        attention_bias=bias,
        mlp_bias=bias,
        attn_implementation=attn,
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
    )


def odd_seq_len(cfg: LlamaConfig) -> int:
    n = cfg.max_position_embeddings
    return n if n % 2 else n - 1


def modern_from_llama(cfg: LlamaConfig) -> ModernConfig:
    """The same model in our terms, mapped here by hand (not by the code under test)."""
    return ModernConfig(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.max_position_embeddings,
        n_embd=cfg.hidden_size,
        n_layer=cfg.num_hidden_layers,
        n_head=cfg.num_attention_heads,
        n_inner=cfg.intermediate_size,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        resid_pdrop=0.0,
        layer_norm_epsilon=cfg.rms_norm_eps,
        positions="rope",
        rope_theta=cfg.rope_parameters["rope_theta"],
        norm="rmsnorm",
        mlp="swiglu",
        n_kv_head=cfg.num_key_value_heads,
        bias=cfg.attention_bias,
        tie_word_embeddings=cfg.tie_word_embeddings,
    )


def hf_llama(seed: int, attn: str = "sdpa") -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return randomise(LlamaForCausalLM(llama_config(seed, attn)), seed).eval()


def from_hf(hf: LlamaForCausalLM) -> ModernGPT:
    config = config_from_hf(hf.config.to_dict())
    assert config == modern_from_llama(hf.config)
    return from_hf_state_dict(hf.state_dict(), config).eval()


def test_llama_cases_cover_every_kind():
    configs = [llama_config(seed) for seed in LLAMA_SEEDS]
    ratios = {c.num_attention_heads // c.num_key_value_heads for c in configs}
    mqa = {c.num_key_value_heads == 1 < c.num_attention_heads for c in configs}
    assert {1, 2} <= ratios and True in mqa and max(ratios) >= 3
    assert {c.tie_word_embeddings for c in configs} == {True, False}
    assert {c.rope_parameters["rope_theta"] for c in configs} == {10000.0, 500.0, 1e6}
    assert {c.attention_bias for c in configs} == {True, False}
    assert any(c.vocab_size % 2 for c in configs)
    assert any(c.intermediate_size % 2 for c in configs)
    assert all(odd_seq_len(c) % 2 for c in configs)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("seed", LLAMA_SEEDS)
def test_from_hf_llama_gives_its_logits(seed, attn):
    hf = hf_llama(seed, attn)
    model = from_hf(hf)
    assert (model.lm_head.weight is model.wte.weight) == hf.config.tie_word_embeddings
    idx = tokens(seed, hf.config.vocab_size, odd_seq_len(hf.config))
    expected = hf(idx, output_attentions=attn == "eager")
    assert_close(model(idx), expected.logits, "fused logits")
    logits, maps = model.forward_with_attention(idx)
    assert_close(logits, expected.logits, "explicit logits")
    assert len(maps) == hf.config.num_hidden_layers
    if attn == "eager":  # Hugging Face returns the weights only there
        for ours, theirs in zip(maps, expected.attentions, strict=True):
            assert_close(ours, theirs, "attention weights")


def our_grad_from_hf(name: str, hf_grads: dict[str, Tensor]) -> Tensor:
    """The gradient our parameter ``name`` must have, read off Hugging Face's by hand."""
    outer = {
        "wte.weight": "model.embed_tokens.weight",
        "ln_f.weight": "model.norm.weight",
        "lm_head.weight": "lm_head.weight",
    }
    if name in outer:
        return hf_grads[outer[name]]
    layer, rest = re.fullmatch(r"h\.(\d+)\.(.+)", name).groups()
    prefix = f"model.layers.{layer}."
    if rest in ("self_attn.in_proj_weight", "self_attn.in_proj_bias"):
        kind = rest.rsplit("_", 1)[1]  # weight or bias
        return torch.cat([hf_grads[f"{prefix}self_attn.{p}_proj.{kind}"] for p in "qkv"])
    block = {
        "norm1.weight": "input_layernorm.weight",
        "norm2.weight": "post_attention_layernorm.weight",
        "self_attn.out_proj.weight": "self_attn.o_proj.weight",
        "self_attn.out_proj.bias": "self_attn.o_proj.bias",
    }
    return hf_grads[prefix + block.get(rest, rest)]  # the MLP's names are Llama's


@pytest.mark.parametrize("seed", LLAMA_SEEDS)
def test_gradients_equal_hf_llama(seed):
    hf = hf_llama(seed)
    model = from_hf(hf)
    idx = tokens(seed, hf.config.vocab_size, odd_seq_len(hf.config))
    targets = tokens(seed + 1000, hf.config.vocab_size, idx.shape[1])
    for net, logits in ((model, model(idx)), (hf, hf(idx).logits)):
        F.cross_entropy(logits.flatten(0, 1), targets.flatten()).backward()
        assert all(p.grad is not None for p in net.parameters())
    hf_grads = {name: p.grad for name, p in hf.named_parameters(remove_duplicate=False)}
    ours = dict(model.named_parameters())
    assert ("lm_head.weight" in ours) != hf.config.tie_word_embeddings
    hf_count = sum(p.numel() for p in hf.parameters())
    assert sum(p.numel() for p in ours.values()) == hf_count
    for name, p in ours.items():
        assert_close(p.grad, our_grad_from_hf(name, hf_grads), f"grad of {name}")


@pytest.mark.parametrize("seed", LLAMA_SEEDS)
def test_greedy_generation_equals_hf_llama(seed):
    hf = hf_llama(seed)
    prompt = tokens(seed, hf.config.vocab_size, 1 + seed % 3)
    new = hf.config.max_position_embeddings - prompt.shape[1]
    theirs = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        pad_token_id=0,
    )
    assert theirs.shape == (2, hf.config.max_position_embeddings)
    assert torch.equal(from_hf(hf).generate(prompt, new, temperature=0), theirs)


@pytest.mark.parametrize("seed", LLAMA_SEEDS)
def test_to_hf_state_dict_loads_into_llama_and_gives_our_logits(seed):
    cfg = llama_config(seed)
    config = modern_from_llama(cfg)
    torch.manual_seed(seed)
    model = randomise(ModernGPT(config), seed + 100).eval()
    values = config_to_hf(config)
    hf_cfg = LlamaConfig(**values, attn_implementation=("eager", "sdpa")[seed % 2])
    for key in (
        "vocab_size",
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "max_position_embeddings",
        "rms_norm_eps",
        "tie_word_embeddings",
        "attention_bias",
        "mlp_bias",
    ):
        assert getattr(hf_cfg, key) == getattr(cfg, key), key
    assert hf_cfg.rope_parameters["rope_theta"] == cfg.rope_parameters["rope_theta"]
    hf = LlamaForCausalLM(hf_cfg).eval()
    hf.load_state_dict(to_hf_state_dict(model))  # strict: exactly Llama's keys and shapes
    tied = hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()
    assert tied == config.tie_word_embeddings
    idx = tokens(seed, cfg.vocab_size, odd_seq_len(cfg))
    assert_close(hf(idx).logits, model(idx), "Llama logits from our weights")
    # round trip: the same tensors come back
    back = from_hf_state_dict(to_hf_state_dict(model), config).state_dict()
    state = model.state_dict()
    assert list(back) == list(state)
    assert all(torch.equal(back[key], state[key]) for key in state)


def test_rope_runs_past_n_positions_as_llama_does():
    """RoPE has angles for every position: T > n_positions runs, and still equals Llama."""
    cfg = llama_config(1)
    cfg.max_position_embeddings = 4
    torch.manual_seed(1)
    hf = randomise(LlamaForCausalLM(cfg), 1).eval()
    model = from_hf(hf)
    idx = tokens(1, cfg.vocab_size, 13)
    assert_close(model(idx), hf(idx).logits, "logits past n_positions")
    assert_close(model.forward_with_attention(idx)[0], hf(idx).logits, "explicit path")


def test_learned_positions_stop_at_n_positions():
    model = ModernGPT(ModernConfig(11, n_positions=6, n_embd=8, n_layer=1, n_head=2)).eval()
    assert model(tokens(0, 11, 6)).shape == (2, 6, 11)
    for forward in (model, model.forward_with_attention):
        with pytest.raises(ValueError, match=r"n_positions=6") as info:
            forward(tokens(0, 11, 7))
        assert "seq_len=7" in str(info.value)


def test_config_from_old_style_llama_json():
    """transformers 4's config.json: rope_theta at the top, rope_scaling null."""
    values = {
        "model_type": "llama",
        "vocab_size": 19,
        "hidden_size": 12,
        "intermediate_size": 7,
        "num_hidden_layers": 2,
        "num_attention_heads": 6,
        "num_key_value_heads": 2,
        "max_position_embeddings": 10,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "rope_scaling": None,
        "tie_word_embeddings": True,
        "hidden_act": "silu",
    }
    assert config_from_hf(values) == ModernConfig(
        vocab_size=19,
        n_positions=10,
        n_embd=12,
        n_layer=2,
        n_head=6,
        n_inner=7,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        resid_pdrop=0.0,
        layer_norm_epsilon=1e-5,
        positions="rope",
        rope_theta=500000.0,
        norm="rmsnorm",
        mlp="swiglu",
        n_kv_head=2,
        bias=False,
        tie_word_embeddings=True,
    )
    values["rope_scaling"] = {"rope_type": "default"}
    assert config_from_hf(values).rope_theta == 500000.0


# ==== 3. each switch against its definition ====

# ---- RoPE ----


def rope_tables_f64(positions: Tensor, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin (T, D) in float64: angle m·θᵢ at features i and i + D/2."""
    angles = positions.to(F64)[:, None] * rope_frequencies(head_dim, theta).to(F64)  # (T, D/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, D)
    return angles.cos(), angles.sin()


def rope_scores(q: Tensor, k: Tensor, positions: Tensor, theta: float) -> Tensor:
    """S[m, n] = rope(q, positions[m]) · rope(k, positions[n]) for one q and one k (D,)."""
    T, D = positions.shape[0], q.shape[0]
    cos, sin = rope_tables_f64(positions, D, theta)
    qs = apply_rope(q.expand(1, 1, T, D), cos, sin)[0, 0]  # (T, D)
    ks = apply_rope(k.expand(1, 1, T, D), cos, sin)[0, 0]  # (T, D)
    return qs @ ks.T  # (T, T)


@pytest.mark.parametrize("theta", [10000.0, 500.0, 1e6])
@pytest.mark.parametrize("head_dim", [2, 4, 8, 10])
def test_rope_scores_depend_only_on_the_offset(head_dim, theta):
    gen = torch.Generator().manual_seed(head_dim)
    q, k = torch.randn(2, head_dim, generator=gen, dtype=F64)
    base = torch.arange(24)
    scores = rope_scores(q, k, base, theta)  # (24, 24)
    for shift in (1, 2, 7, 100, 12345):
        assert_close(rope_scores(q, k, base + shift, theta), scores, f"shift {shift}")
    # ... and so along each diagonal the score is one number
    for offset in range(-5, 6):
        diagonal = scores.diagonal(offset)
        assert_close(diagonal, diagonal[:1].expand_as(diagonal), f"offset {offset}")
    assert_close(scores.diagonal(), (q @ k).expand(24), "offset 0 is the plain dot product")
    assert (scores[0, 1:] - scores[0, 0]).abs().max() > 1e-3  # the offset does matter


def paper_rope(x: Tensor, positions: Tensor, theta: float) -> Tensor:
    """RoFormer's interleaved RoPE: pair (x₂ᵢ, x₂ᵢ₊₁) rotated by m·θᵢ, θᵢ = theta^(-2i/D)."""
    D = x.shape[-1]
    freqs = theta ** (-torch.arange(0, D, 2, dtype=F64) / D)  # (D/2,)
    angles = positions.to(F64)[:, None] * freqs  # (T, D/2)
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    even, odd = x[..., 0::2], x[..., 1::2]  # (..., T, D/2)
    rotated = torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1)
    return rotated.flatten(-2)  # (..., T, D)


def test_rotate_half_pairs_feature_i_with_i_plus_half():
    x = torch.arange(1.0, 7.0)
    assert rotate_half(x).tolist() == [-4.0, -5.0, -6.0, 1.0, 2.0, 3.0]
    # rotating a basis vector moves it only within its pair {i, i + D/2}
    D = 8
    cos, sin = RotaryEmbedding(D)(torch.tensor([3]), torch.float32)
    for i in range(D):
        rotated = apply_rope(torch.eye(D)[i].view(1, 1, 1, D), cos, sin).flatten()
        assert set(rotated.nonzero().flatten().tolist()) == {i, (i + D // 2) % D}, i


@pytest.mark.parametrize("theta", [10000.0, 500.0])
@pytest.mark.parametrize("head_dim", [4, 6, 8])
def test_rope_is_the_paper_rope_after_permuting_features(head_dim, theta):
    gen = torch.Generator().manual_seed(head_dim)
    x = torch.randn(2, 3, 11, head_dim, generator=gen)
    positions = torch.arange(11)
    cos, sin = RotaryEmbedding(head_dim, theta)(positions, torch.float32)
    ours = apply_rope(x, cos, sin)
    paper = paper_rope(x, positions, theta)
    assert not torch.allclose(ours, paper, atol=1e-3)  # not the interleaved pairing ...
    half = head_dim // 2  # ... but it after sending feature i to 2i and i + D/2 to 2i + 1
    perm = torch.stack([torch.arange(half), torch.arange(half) + half], dim=-1).flatten()
    assert_close(ours[..., perm], paper_rope(x[..., perm], positions, theta), "permuted")


def test_rope_tables_and_frequencies_follow_the_formula():
    for head_dim, theta in ((2, 10000.0), (8, 500.0), (10, 1e6)):
        i = torch.arange(head_dim // 2, dtype=F64)
        expected = theta ** (-2 * i / head_dim)
        assert_close(rope_frequencies(head_dim, theta), expected.float(), "frequencies")
        positions = torch.arange(40)
        cos, sin = RotaryEmbedding(head_dim, theta)(positions, torch.float32)
        cos64, sin64 = rope_tables_f64(positions, head_dim, theta)
        assert_close(cos, cos64.float(), "cos table")
        assert_close(sin, sin64.float(), "sin table")
    # positions start at 0, the identity rotation
    cos, sin = RotaryEmbedding(8)(torch.arange(5), torch.float32)
    assert torch.equal(cos[0], torch.ones(8)) and torch.equal(sin[0], torch.zeros(8))
    assert "inv_freq" not in RotaryEmbedding(8).state_dict()


def test_attention_rotates_q_and_k_from_position_0():
    torch.manual_seed(0)
    rope = GroupedQueryAttention(12, 3, 1, rope_theta=500.0)
    plain = GroupedQueryAttention(12, 3, 1)
    plain.load_state_dict(rope.state_dict())
    x = torch.randn(2, 7, 12)
    q, k, v = rope.project(x)
    q0, k0, v0 = plain.project(x)
    assert q.shape == (2, 3, 7, 4) and k.shape == v.shape == (2, 1, 7, 4)
    assert torch.equal(v, v0)  # values are not rotated
    assert_close(q[:, :, 0], q0[:, :, 0], "position 0 is not rotated (q)")
    assert_close(k[:, :, 0], k0[:, :, 0], "position 0 is not rotated (k)")
    cos, sin = rope_tables_f64(torch.arange(7), 4, 500.0)
    assert_close(q, apply_rope(q0.double(), cos, sin).float(), "q rotated by its position")
    assert_close(k, apply_rope(k0.double(), cos, sin).float(), "k rotated by its position")
    shifted = rope.project(x, torch.arange(5, 12))
    assert_close(
        shifted[0],
        apply_rope(q0.double(), *rope_tables_f64(torch.arange(5, 12), 4, 500.0)).float(),
        "positions argument",
    )
    # through the module, the scores still depend on the offset only
    scores = q @ k.transpose(-2, -1)
    assert_close(shifted[0] @ shifted[1].transpose(-2, -1), scores, "scores after a shift")


# ---- RMSNorm ----

RMS_SHAPES = [(5,), (2, 7), (3, 4, 16), (2, 1, 3, 33)]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("eps", [1e-6, 1e-5, 1e-2])
def test_rmsnorm_is_torchs(dtype, eps):
    tol = 1e-6 if dtype == torch.float32 else 1e-10
    for seed, shape in enumerate(RMS_SHAPES):
        gen = torch.Generator().manual_seed(seed)
        dim = shape[-1]
        ours = RMSNorm(dim, eps).to(dtype)
        theirs = nn.RMSNorm(dim, eps=eps, dtype=dtype)
        weight = torch.randn(dim, generator=gen, dtype=dtype)
        with torch.no_grad():
            ours.weight.copy_(weight)
            theirs.weight.copy_(weight)
        x = 1.0 + 3 * torch.randn(shape, generator=gen, dtype=dtype)  # mean away from 0
        what = f"shape {shape}"
        torch.testing.assert_close(
            ours(x), theirs(x), atol=tol, rtol=tol, msg=lambda m, what=what: f"{what}: {m}"
        )


def test_rmsnorm_eps_sits_inside_the_square_root():
    gen = torch.Generator().manual_seed(0)
    x = 1e-4 * torch.randn(3, 8, generator=gen)  # mean(x²) ~ 1e-8, far below eps
    eps = 1e-3
    ours = RMSNorm(8, eps)
    expected = x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps)  # written out
    assert_close(ours(x), expected, "x / sqrt(mean(x²) + eps)")
    assert_close(ours(x), nn.RMSNorm(8, eps=eps)(x), "torch.nn.RMSNorm")
    assert ours(x).pow(2).mean() < 1e-3  # eps dominates: not scaled up to unit RMS


# ---- SwiGLU ----


def test_swiglu_width_holds_as_many_weights_as_gelus():
    for d in range(1, 61):
        h = swiglu_hidden_dim(4 * d)
        gelu, swiglu = 2 * d * (4 * d), 3 * d * h
        if d % 3 == 0:
            assert swiglu == gelu, d
        assert abs(3 * h - 8 * d) <= 1, d  # h is 8d/3 rounded to the nearest integer
        assert abs(swiglu - gelu) < 3 * d, d  # within one hidden unit's weights
    assert [swiglu_hidden_dim(4 * d) for d in (3, 4, 5, 768)] == [8, 11, 13, 2048]


@pytest.mark.parametrize("d", [6, 8, 10, 16])
def test_swiglu_model_mlp_has_gelus_weight_count(d):
    def mlp_weights(mlp: str) -> int:
        config = ModernConfig(23, n_positions=4, n_embd=d, n_layer=1, n_head=2, mlp=mlp, bias=False)
        return sum(p.numel() for p in ModernGPT(config).h[0].mlp.parameters())

    gelu, swiglu = mlp_weights("gelu"), mlp_weights("swiglu")
    assert gelu == 8 * d * d
    assert abs(swiglu - gelu) < 3 * d
    if d % 3 == 0:
        assert swiglu == gelu


def test_swiglu_is_its_formula():
    torch.manual_seed(0)
    mlp = randomise(SwiGLU(6, 5, bias=True), 0)
    x = torch.randn(2, 3, 6)
    gate = x @ mlp.gate_proj.weight.T + mlp.gate_proj.bias
    up = x @ mlp.up_proj.weight.T + mlp.up_proj.bias
    hidden = gate * torch.sigmoid(gate) * up  # SiLU(gate) · up
    expected = hidden @ mlp.down_proj.weight.T + mlp.down_proj.bias
    assert_close(mlp(x), expected, "down(silu(gate(x)) * up(x))")


# ---- grouped-query attention ----


def mha_from_gqa(gqa: GroupedQueryAttention) -> MultiHeadAttention:
    """v2's multi-head attention whose head h uses our key/value head h // groups."""
    heads, kv_heads, D, E = gqa.num_heads, gqa.num_kv_heads, gqa.head_dim, gqa.embed_dim
    which = torch.arange(heads) // (heads // kv_heads)  # (H,)

    def repeat(rows: Tensor) -> Tensor:  # (H_kv·D, ...) -> (H·D, ...)
        return rows.reshape(kv_heads, D, *rows.shape[1:])[which].reshape(heads * D, *rows.shape[1:])

    bias = gqa.in_proj_bias is not None
    mha = MultiHeadAttention(E, heads, bias=bias, batch_first=True)
    with torch.no_grad():
        q, k, v = gqa.in_proj_weight.split([E, kv_heads * D, kv_heads * D])
        mha.in_proj_weight.copy_(torch.cat([q, repeat(k), repeat(v)]))
        mha.out_proj.weight.copy_(gqa.out_proj.weight)
        if bias:
            qb, kb, vb = gqa.in_proj_bias.split([E, kv_heads * D, kv_heads * D])
            mha.in_proj_bias.copy_(torch.cat([qb, repeat(kb), repeat(vb)]))
            mha.out_proj.bias.copy_(gqa.out_proj.bias)
    return mha.eval()


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize(
    "heads,kv_heads,bias", [(4, 2, True), (6, 3, False), (6, 2, True), (4, 1, True), (3, 3, False)]
)
def test_gqa_is_mha_with_repeated_kv_heads(heads, kv_heads, bias, need_weights, causal):
    torch.manual_seed(heads * 10 + kv_heads)
    gqa = randomise(GroupedQueryAttention(heads * 3, heads, kv_heads, bias=bias), heads).eval()
    mha = mha_from_gqa(gqa)
    x = torch.randn(2, 7, heads * 3)
    mask = torch.ones(7, 7, dtype=torch.bool).triu(1) if causal else None  # True = blocked
    expected, expected_weights = mha(
        x, x, x, attn_mask=mask, need_weights=need_weights, average_attn_weights=False
    )
    out, weights = gqa.self_attend(x, causal=causal, need_weights=need_weights)
    assert_close(out, expected, "output")
    if need_weights:
        assert weights.shape == (2, heads, 7, 7)
        assert_close(weights, expected_weights, "weights")
    else:
        assert weights is None and expected_weights is None
    if causal:
        assert_close(gqa(x), expected, "forward")


def test_kv_cache_shrinks_with_the_kv_heads():
    for kv_heads in (1, 2, 4):
        config = ModernConfig.llama(
            9, n_positions=4, n_embd=16, n_layer=3, n_head=4, n_kv_head=kv_heads
        )
        model = ModernGPT(config)
        assert model.kv_cache_bytes_per_token() == 2 * 3 * kv_heads * 4 * 4
        assert model.h[0].self_attn.in_proj_weight.shape == (16 + 2 * kv_heads * 4, 16)


# ---- gradients, numerically, in float64 ----


class SelfAttend(nn.Module):
    """``inner.self_attend(x, causal=True, need_weights=...)`` as a forward, for functional_call."""

    def __init__(self, inner: nn.Module, need_weights: bool) -> None:
        super().__init__()
        self.inner, self.need_weights = inner, need_weights

    def forward(self, x: Tensor):
        out, weights = self.inner.self_attend(x, causal=True, need_weights=self.need_weights)
        return (out, weights) if self.need_weights else out


def gradcheck_module(module: nn.Module, x: Tensor) -> bool:
    """gradcheck with respect to the input and every parameter of ``module``."""
    names = [name for name, _ in module.named_parameters()]
    params = [p.detach().clone().requires_grad_() for p in module.parameters()]

    def fn(x, *weights):
        return functional_call(module, dict(zip(names, weights, strict=True)), (x,))

    return gradcheck(fn, (x, *params), eps=1e-6, atol=1e-8)


def f64_input(*shape: int) -> Tensor:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(*shape, generator=gen, dtype=F64, requires_grad=True)


@pytest.mark.parametrize("need_weights", [True, False])
def test_gqa_with_rope_gradcheck(need_weights):
    torch.manual_seed(0)
    gqa = randomise(GroupedQueryAttention(4, 2, 1, rope_theta=100.0).double(), 0)
    assert gradcheck_module(SelfAttend(gqa, need_weights), f64_input(2, 3, 4))


def test_rmsnorm_gradcheck():
    norm = randomise(RMSNorm(6, 1e-5).double(), 0)
    assert gradcheck_module(norm, f64_input(3, 6))


def test_swiglu_gradcheck():
    torch.manual_seed(0)
    mlp = randomise(SwiGLU(6, 5, bias=True).double(), 0)
    assert gradcheck_module(mlp, f64_input(2, 3, 6))


@pytest.mark.parametrize("need_weights", [True, False])
def test_modern_block_with_llama_switches_gradcheck(need_weights):
    config = ModernConfig.llama(
        5, n_positions=3, n_embd=4, n_layer=1, n_head=2, n_kv_head=1, n_inner=3, bias=True
    )
    torch.manual_seed(0)
    block = randomise(ModernBlock(config).double(), 0).eval()
    assert gradcheck_module(SelfAttend(block, need_weights), f64_input(2, 3, 4))


# ==== 4. bad input ====


@pytest.mark.parametrize(
    "field,value,error",
    [
        ("positions", "sinusoidal", ValueError),
        ("norm", "batchnorm", ValueError),
        ("mlp", "relu", ValueError),
        ("n_kv_head", 3, ValueError),  # does not divide n_head=4
        ("n_kv_head", 0, ValueError),
        ("n_kv_head", 2.0, ValueError),
        ("n_kv_head", True, ValueError),
        ("rope_theta", 0, ValueError),
        ("rope_theta", -5.0, ValueError),
        ("rope_theta", float("nan"), ValueError),
        ("rope_theta", float("inf"), ValueError),
        ("rope_theta", "10000", ValueError),
        ("bias", "yes", TypeError),
        ("tie_word_embeddings", 1, TypeError),
    ],
)
def test_a_bad_switch_is_refused_naming_the_field(field, value, error):
    with pytest.raises(error) as info:
        ModernConfig(vocab_size=5, n_embd=8, n_head=4, **{field: value})
    message = str(info.value)
    assert re.search(rf"\b{field}\b", message), message
    assert str(value) in message, message


def test_models_refuse_what_they_are_not():
    with pytest.raises(TypeError, match=r"^config: .*ModernConfig"):
        ModernGPT(GPTConfig(5, n_embd=8, n_head=2))
    with pytest.raises(TypeError, match=r"^gpt: "):
        from_gpt(ModernGPT(ModernConfig(5, n_embd=8, n_head=2, n_layer=1)))
    with pytest.raises(ValueError, match=r"^positions: "):
        ModernConfig.llama(5, n_embd=8, n_head=2).to_gpt_config()
    with pytest.raises(ValueError, match=r"^n_kv_head: "):
        ModernConfig(5, n_embd=8, n_head=2, n_kv_head=1).to_gpt_config()
    learned = ModernGPT(ModernConfig(5, n_positions=4, n_embd=8, n_head=2, n_layer=1))
    with pytest.raises(ValueError, match=r"^positions: .*'rope'"):
        to_hf_state_dict(learned)
    with pytest.raises(ValueError, match=r"^positions: "):
        config_to_hf(learned.config)
    with pytest.raises(ValueError, match=r"resid_pdrop"):
        config_to_hf(ModernConfig.llama(5, n_embd=8, n_head=2, resid_pdrop=0.1))


def llama_json(**changes) -> dict:
    values = {
        "model_type": "llama",
        "vocab_size": 11,
        "hidden_size": 8,
        "intermediate_size": 5,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 8,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
    }
    return values | changes


@pytest.mark.parametrize(
    "changes,key,named",
    [
        ({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, "rope_scaling", "linear"),
        ({"rope_scaling": {"type": "yarn", "factor": 4.0}}, "rope_scaling", "yarn"),
        (
            {"rope_parameters": {"rope_type": "yarn", "rope_theta": 1e4, "factor": 4.0}},
            "rope_parameters",
            "yarn",
        ),
        (
            {"rope_parameters": {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0}},
            "rope_parameters",
            "linear",
        ),
        ({"attention_bias": True}, "attention_bias", "mlp_bias"),
        ({"mlp_bias": True}, "attention_bias", "mlp_bias"),
        ({"hidden_act": "gelu"}, "hidden_act", "gelu"),
        ({"model_type": "mistral"}, "model_type", "mistral"),
        ({"head_dim": 3}, "head_dim", "3"),
        ({"pretraining_tp": 2}, "pretraining_tp", "2"),
    ],
)
def test_config_from_hf_refuses_what_v7_does_not_implement(changes, key, named):
    with pytest.raises(ValueError) as info:
        config_from_hf(llama_json(**changes))
    message = str(info.value)
    assert re.search(rf"\b{key}\b", message) and named in message, message


def test_config_from_hf_refuses_a_scaled_rope_written_by_transformers():
    cfg = LlamaConfig(
        **llama_json(), rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e4}
    )
    with pytest.raises(ValueError, match=r"linear") as info:
        config_from_hf(cfg.to_dict())
    assert "rope_parameters" in str(info.value)
    with pytest.raises(TypeError, match=r"^config: "):
        config_from_hf(cfg)  # the object, not its dict


def small_llama_state(bias: bool = False, tie: bool = False) -> tuple[ModernConfig, dict]:
    config = ModernConfig.llama(
        11,
        n_positions=8,
        n_embd=12,
        n_layer=1,
        n_head=3,
        n_kv_head=3,
        n_inner=5,
        bias=bias,
        tie_word_embeddings=tie,
    )
    torch.manual_seed(0)
    return config, to_hf_state_dict(randomise(ModernGPT(config), 0))


def refused(state: dict, config: ModernConfig) -> str:
    with pytest.raises(ValueError) as info:
        from_hf_state_dict(state, config)
    return str(info.value)


def test_from_hf_state_dict_names_a_missing_or_extra_key():
    config, state = small_llama_state()
    k = "model.layers.0.self_attn.k_proj.weight"
    missing = {key: value for key, value in state.items() if key != k}
    assert k in refused(missing, config)
    extra = dict(state)
    extra["model.layers.1.mlp.up_proj.weight"] = state["model.layers.0.mlp.up_proj.weight"]
    assert "model.layers.1.mlp.up_proj.weight" in refused(extra, config)
    no_biases = refused(state, small_llama_state(bias=True)[0])
    assert re.search(r"'model\.layers\.0\.[a-z_.]+\.bias'", no_biases), no_biases
    # a buffer that old checkpoints carry is not a weight: ignored
    old = dict(state)
    old["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(2)
    assert from_hf_state_dict(old, config).config == config


def test_from_hf_state_dict_names_a_wrong_shape():
    config, state = small_llama_state()
    state["model.norm.weight"] = torch.ones(13)
    message = refused(state, config)
    assert "model.norm.weight" in message and "(13,)" in message, message


def test_from_hf_state_dict_names_a_wrong_shape_in_q_k_or_v():
    config, state = small_llama_state()
    k = "model.layers.0.self_attn.k_proj.weight"
    state[k] = torch.ones(12, 13)  # one column too many
    message = refused(state, config)
    assert k in message and "(12, 13)" in message, message


def test_from_hf_state_dict_refuses_rows_moved_between_q_and_k():
    """The packed matrix has the right shape, q and k do not: still an error."""
    config, state = small_llama_state()
    q, k = "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"
    state[q], state[k] = torch.cat([state[q], state[k][:4]]), state[k][4:]
    assert q in refused(state, config)


def test_from_hf_state_dict_refuses_an_untied_head_for_a_tied_config():
    config, state = small_llama_state(tie=True)
    state["lm_head.weight"] = state["lm_head.weight"] + 1.0
    assert "lm_head.weight" in refused(state, config)
    with pytest.raises(ValueError, match=r"^positions: "):
        from_hf_state_dict(state, ModernConfig(11, n_positions=8, n_embd=12, n_head=3))
