"""v5_gpt against Hugging Face's GPT2LMHeadModel, built offline from tiny random configs."""

import importlib
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from transformers import GPT2Config, GPT2LMHeadModel, GPT2Model

import transformer.v5_gpt.hf as v5_hf
from tests.reference import assert_close
from transformer import ModelConfig, get_stage
from transformer.v5_gpt import (
    GPT,
    GPTConfig,
    GPTSequenceModel,
    from_hf_gpt2,
    load_gpt2_checkpoint,
    next_token,
    save_gpt2_checkpoint,
    to_hf_state_dict,
)

v1_attention = importlib.import_module(
    "transformer.v1_basic_attention.attention"
)  # the module (the package's .attention is the function)

SEEDS = range(12)
SRC = Path(__file__).resolve().parents[1] / "src" / "transformer"


def hf_config(seed: int, attn: str = "sdpa", dropout=(0.1, 0.1, 0.1)) -> GPT2Config:
    """A random tiny GPT-2: sizes, MLP width, epsilon and spelling of the tanh GELU.

    ``dropout`` is (embd_pdrop, attn_pdrop, resid_pdrop).
    """
    gen = torch.Generator().manual_seed(seed)

    def pick(*options):
        return options[int(torch.randint(len(options), (1,), generator=gen))]

    n_head = pick(1, 2, 4)
    return GPT2Config(
        vocab_size=pick(5, 17, 64),
        n_positions=pick(8, 12, 20),
        n_embd=n_head * pick(2, 4, 8),
        n_layer=pick(1, 2, 3),
        n_head=n_head,
        n_inner=pick(None, 7, 24),
        layer_norm_epsilon=pick(1e-5, 1e-6, 1e-3),
        activation_function=pick("gelu_new", "gelu_pytorch_tanh", "gelu_fast"),
        embd_pdrop=dropout[0],
        attn_pdrop=dropout[1],
        resid_pdrop=dropout[2],
        attn_implementation=attn,
        bos_token_id=None,
        eos_token_id=None,
    )


def gpt_config(cfg: GPT2Config) -> GPTConfig:
    """The same sizes, mapped here by hand (not by the code under test)."""
    return GPTConfig(
        vocab_size=cfg.vocab_size,
        n_positions=cfg.n_positions,
        n_embd=cfg.n_embd,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_inner=cfg.n_inner,
        embd_pdrop=cfg.embd_pdrop,
        attn_pdrop=cfg.attn_pdrop,
        resid_pdrop=cfg.resid_pdrop,
        layer_norm_epsilon=cfg.layer_norm_epsilon,
    )


def randomise(model: nn.Module, seed: int) -> nn.Module:
    """Move every parameter away from its initial value (biases 0 and LayerNorm 1 test nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model


def hf_model(seed: int, attn: str = "sdpa", dropout=(0.1, 0.1, 0.1)) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    return randomise(GPT2LMHeadModel(hf_config(seed, attn, dropout)), seed).eval()


def tokens(seed: int, vocab_size: int, seq_len: int, batch: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, seq_len), generator=gen)


def check_matches_hf(gpt: GPT, hf: GPT2LMHeadModel, idx: torch.Tensor) -> None:
    """Both of GPT's paths give Hugging Face's logits; with eager attention, its weights too."""
    expected = hf(idx, output_attentions=hf.config._attn_implementation == "eager")
    assert_close(gpt(idx), expected.logits, "GPT.forward logits")
    logits, maps = gpt.forward_with_attention(idx)
    assert_close(logits, expected.logits, "GPT.forward_with_attention logits")
    assert len(maps) == hf.config.n_layer
    for ours, theirs in zip(maps, expected.attentions or (), strict=False):
        assert_close(ours, theirs, "attention weights")


# ---- equality with Hugging Face, both directions ----


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("seed", SEEDS)
def test_from_hf_gpt2_gives_hf_logits(seed, attn):
    hf = hf_model(seed, attn)
    gpt = from_hf_gpt2(hf).eval()
    assert gpt.config == gpt_config(hf.config)
    check_matches_hf(gpt, hf, tokens(seed, hf.config.vocab_size, hf.config.n_positions))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("seed", SEEDS)
def test_to_hf_state_dict_loads_into_hf_and_gives_our_logits(seed, attn):
    cfg = hf_config(seed, attn)
    torch.manual_seed(seed)
    gpt = randomise(GPT(gpt_config(cfg)), seed + 100).eval()
    hf = GPT2LMHeadModel(cfg).eval()
    hf.load_state_dict(to_hf_state_dict(gpt))  # strict: exactly Hugging Face's keys and shapes
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()
    check_matches_hf(gpt, hf, tokens(seed, cfg.vocab_size, 1 + seed % cfg.n_positions))


@pytest.mark.parametrize("seed", range(3))
def test_dropout_sits_where_gpt2_has_it(seed):
    """In training, with one seed, our dropout masks are Hugging Face's: same places, same order."""
    hf = hf_model(seed, "sdpa", dropout=(0.1, 0.3, 0.2)).train()
    gpt = from_hf_gpt2(hf).train()
    idx = tokens(seed, hf.config.vocab_size, hf.config.n_positions)
    torch.manual_seed(seed)
    expected = hf(idx).logits
    torch.manual_seed(seed)
    assert_close(gpt(idx), expected, "fused path in training")
    torch.manual_seed(seed)
    assert_close(gpt.forward_with_attention(idx)[0], expected, "explicit path in training")
    torch.manual_seed(seed + 1)
    assert not torch.allclose(gpt(idx), expected)


def test_gradients_equal_hf():
    hf = hf_model(3, "sdpa", dropout=(0.0, 0.0, 0.0))
    gpt = from_hf_gpt2(hf)
    idx = tokens(3, hf.config.vocab_size, hf.config.n_positions)
    for model, logits in ((gpt, gpt(idx)), (hf, hf(idx).logits)):
        F.cross_entropy(logits[:, :-1].flatten(0, 1), idx[:, 1:].flatten()).backward()
        assert all(p.grad is not None for p in model.parameters())
    ours, theirs = dict(gpt.named_parameters()), dict(hf.named_parameters())
    for our_key, hf_key, transposed in v5_hf.key_pairs(gpt.config.n_layer):
        grad = ours[our_key].grad
        assert_close(grad.t() if transposed else grad, theirs[hf_key].grad, f"grad of {hf_key}")


# ---- generation ----


@pytest.mark.parametrize("seed", range(3))
def test_greedy_generation_equals_hf(seed):
    hf = hf_model(seed)
    prompt = tokens(seed, hf.config.vocab_size, 1 + seed, batch=2)
    new = hf.config.n_positions - prompt.shape[1]  # HF cannot go past n_positions
    ours = from_hf_gpt2(hf).eval().generate(prompt, new, temperature=0)
    theirs = hf.generate(
        prompt,
        attention_mask=torch.ones_like(prompt),
        max_new_tokens=new,
        min_new_tokens=new,
        do_sample=False,
        pad_token_id=0,
    )
    assert torch.equal(ours, theirs)


def test_generation_keeps_only_the_last_n_positions_tokens():
    hf = hf_model(1, "eager")
    n = hf.config.n_positions
    prompt = tokens(1, hf.config.vocab_size, n - 2, batch=2)
    expected = prompt
    for _ in range(2 * n):  # reference: Hugging Face's logits on the cropped window
        last = hf(expected[:, -n:]).logits[:, -1]
        expected = torch.cat([expected, last.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(from_hf_gpt2(hf).eval().generate(prompt, 2 * n, temperature=0), expected)


def small_gpt(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=11, n_positions=16, n_embd=16, n_layer=2, n_head=2)
    return randomise(GPT(config), seed).eval()


def test_top_k_and_temperature():
    gpt = small_gpt()
    prompt = tokens(0, 11, 5, batch=1).expand(8000, 5)
    logits = gpt(prompt[:1])[0, -1]  # (V,)
    greedy = gpt.generate(prompt[:2], 6, temperature=0)
    for temperature in (0.5, 3.0):  # top_k=1 is greedy whatever the temperature
        assert torch.equal(gpt.generate(prompt[:2], 6, temperature, top_k=1), greedy)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(gpt.generate(prompt[:2], 6, 1e-4, generator=gen), greedy)

    top3 = set(logits.topk(3).indices.tolist())
    drawn = gpt.generate(prompt, 1, top_k=3, generator=gen)[:, -1]
    assert set(drawn.tolist()) == top3
    for temperature in (0.5, 2.0):  # sampled frequencies follow softmax(logits / temperature)
        drawn = gpt.generate(prompt, 1, temperature, generator=gen)[:, -1]
        frequency = torch.bincount(drawn, minlength=11) / len(drawn)
        expected = torch.softmax(logits / temperature, dim=-1)
        assert (frequency - expected).abs().sum() < 0.04, (temperature, frequency, expected)


def test_generate_is_reproducible_with_a_generator_and_keeps_the_prompt():
    gpt = small_gpt()
    prompt = tokens(1, 11, 3, batch=4)
    first = gpt.generate(prompt, 8, generator=torch.Generator().manual_seed(5))
    again = gpt.generate(prompt, 8, generator=torch.Generator().manual_seed(5))
    other = gpt.generate(prompt, 8, generator=torch.Generator().manual_seed(6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert first.shape == (4, 11) and torch.equal(first[:, :3], prompt)
    assert torch.equal(gpt.generate(prompt, 0), prompt)


def test_next_token_on_known_logits():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.5], [2.0, 0.0, 0.0, 0.0]])
    assert next_token(logits, temperature=0).tolist() == [[1], [0]]
    gen = torch.Generator().manual_seed(0)
    drawn = torch.cat([next_token(logits, 1.0, 2, gen) for _ in range(200)], dim=1)
    assert set(drawn[0].tolist()) == {1, 3}
    assert set(drawn[1].tolist()) <= {0, 1, 2, 3} and (drawn[1] == 0).any()


# ---- checkpoints on disk ----


def test_loads_a_checkpoint_written_by_save_pretrained(tmp_path):
    hf = hf_model(4)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    assert (tmp_path / "model.safetensors").is_file()
    check_matches_hf(load_gpt2_checkpoint(tmp_path).eval(), hf, tokens(4, hf.config.vocab_size, 6))


def test_loads_a_sharded_checkpoint(tmp_path):
    hf = hf_model(5)
    hf.save_pretrained(tmp_path, max_shard_size="1KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    check_matches_hf(load_gpt2_checkpoint(tmp_path).eval(), hf, tokens(5, hf.config.vocab_size, 6))


def test_loads_a_bare_gpt2model_checkpoint_without_the_transformer_prefix(tmp_path):
    torch.manual_seed(6)
    body = randomise(GPT2Model(hf_config(6)), 6).eval()
    body.save_pretrained(tmp_path)
    idx = tokens(6, body.config.vocab_size, 5)
    gpt = load_gpt2_checkpoint(tmp_path).eval()
    assert_close(gpt.hidden_states(idx), body(idx).last_hidden_state, "hidden states")


def test_save_gpt2_checkpoint_loads_in_hf_and_back(tmp_path):
    gpt = small_gpt(7)
    save_gpt2_checkpoint(gpt, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "gpt2"
    hf = GPT2LMHeadModel.from_pretrained(tmp_path).eval()
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr()
    check_matches_hf(gpt, hf, tokens(7, 11, 9))
    again = load_gpt2_checkpoint(tmp_path)
    assert again.config == gpt.config
    for (name, ours), theirs in zip(
        gpt.state_dict().items(), again.state_dict().values(), strict=True
    ):
        assert torch.equal(ours, theirs), name


def test_a_checkpoint_without_safetensors_is_refused(tmp_path):
    hf_config(0).save_pretrained(tmp_path)
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(FileNotFoundError) as info:
        load_gpt2_checkpoint(tmp_path)
    assert re.fullmatch(
        r"directory: expected model.safetensors \(or model.safetensors.index.json\) in .*, "
        r"got \['config.json', 'pytorch_model.bin'\]; re-save with save_pretrained\(..., "
        r"safe_serialization=True\)",
        str(info.value),
    ), info.value


def test_no_runtime_import_of_transformers():
    for path in SRC.rglob("*.py"):
        assert not re.search(r"^\s*(import|from) transformers\b", path.read_text(), re.M), path


# ---- the model itself ----


def check_no_leak(forward, idx: torch.Tensor, vocab_size: int) -> None:
    """Changing token t+1 leaves the logits at positions <= t exactly as they were."""
    before = forward(idx)
    for t in range(idx.shape[1] - 1):
        changed = idx.clone()
        changed[:, t + 1] = (idx[:, t + 1] + 1) % vocab_size
        after = forward(changed)
        assert torch.equal(after[:, : t + 1], before[:, : t + 1]), f"position {t + 1} leaks"
        assert not torch.allclose(after[:, t + 1], before[:, t + 1])


@pytest.mark.parametrize("path", ["fused", "explicit"])
def test_a_later_token_never_changes_earlier_logits(path):
    gpt = small_gpt(8)
    forward = gpt if path == "fused" else (lambda idx: gpt.forward_with_attention(idx)[0])
    check_no_leak(forward, tokens(8, 11, 10), 11)


def test_head_is_the_token_embedding():
    gpt = small_gpt().train()
    assert gpt.lm_head.weight is gpt.wte.weight
    assert "lm_head.weight" not in dict(gpt.named_parameters())
    optimiser = torch.optim.AdamW(gpt.parameters(), lr=0.1)
    F.cross_entropy(gpt(tokens(0, 11, 8)).flatten(0, 1), tokens(1, 11, 8).flatten()).backward()
    optimiser.step()
    assert gpt.lm_head.weight is gpt.wte.weight


def test_parameter_count_is_gpt2s():
    cfg = hf_config(9)
    assert GPT(gpt_config(cfg)).num_parameters() == GPT2LMHeadModel(cfg).num_parameters()
    with torch.device("meta"):
        assert GPT(GPTConfig(vocab_size=50257)).num_parameters() == 124_439_808  # GPT-2 small


def test_gpt2_initialisation():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=512, n_embd=256, n_layer=8, n_head=4, n_positions=256))
    residual = 0.02 / math.sqrt(2 * 8)
    block = gpt.h[3]
    for weight, std in [
        (gpt.wte.weight, 0.02),
        (gpt.wpe.weight, 0.02),
        (block.self_attn.in_proj_weight, 0.02),
        (block.linear1.weight, 0.02),
        (block.self_attn.out_proj.weight, residual),
        (block.linear2.weight, residual),
    ]:
        assert abs(weight.std().item() / std - 1) < 0.05 and abs(weight.mean().item()) < std / 20
    for name, p in gpt.named_parameters():
        if name.endswith("bias"):
            assert torch.equal(p, torch.zeros_like(p)), name
        elif "norm" in name or "ln_f" in name:
            assert torch.equal(p, torch.ones_like(p)), name


def test_config_round_trips_through_json():
    config = GPTConfig(vocab_size=50, n_positions=32, n_embd=24, n_layer=3, n_head=6, n_inner=40)
    assert GPTConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert config.inner_dim == 40 and GPTConfig(vocab_size=5, n_embd=8, n_head=2).inner_dim == 32


def test_contract_model_is_a_gpt_with_maps():
    config = ModelConfig(vocab_size=9, d_model=16, num_heads=4, num_layers=3, max_len=12)
    model = get_stage("v5").build_model(config).eval()
    assert isinstance(model, GPTSequenceModel)
    assert model.gpt.config == GPTConfig(
        9, 12, 16, 3, 4, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0
    )
    idx = tokens(10, 9, 12)
    assert_close(model(idx), model.gpt(idx), "contract logits against the fused path")
    logits, maps = model(idx, return_attention=True)
    assert_close(logits, model.gpt(idx), "contract logits on the explicit path")
    assert [m.shape for m in maps] == [(3, 4, 12, 12)] * 3


# ---- the checks above can fail ----


def test_check_catches_a_forgotten_conv1d_transpose(monkeypatch):
    """c_proj is square, so forgetting its transpose raises no shape error: only numbers show it."""
    keys = tuple(
        (ours, theirs, False if theirs == "attn.c_proj.weight" else t)
        for ours, theirs, t in v5_hf.BLOCK_KEYS
    )
    monkeypatch.setattr(v5_hf, "BLOCK_KEYS", keys)
    hf = hf_model(0)
    with pytest.raises(AssertionError):
        check_matches_hf(from_hf_gpt2(hf).eval(), hf, tokens(0, hf.config.vocab_size, 5))


def test_check_catches_the_exact_gelu():
    hf = hf_model(1)
    gpt = from_hf_gpt2(hf).eval()
    for block in gpt.h:
        block.activation = F.gelu  # erf GELU, not GPT-2's tanh approximation
    with pytest.raises(AssertionError):
        check_matches_hf(gpt, hf, tokens(1, hf.config.vocab_size, hf.config.n_positions))


def test_check_catches_v4s_dropout_inside_the_mlp():
    hf = hf_model(2, dropout=(0.1, 0.3, 0.2)).train()
    gpt = from_hf_gpt2(hf).train()
    for block in gpt.h:
        block.dropout = nn.Dropout(0.3)
    idx = tokens(2, hf.config.vocab_size, hf.config.n_positions)
    torch.manual_seed(0)
    expected = hf(idx).logits
    torch.manual_seed(0)
    assert not torch.allclose(gpt(idx), expected, atol=1e-3)


def test_check_catches_a_forgotten_causal_flag(monkeypatch):
    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p)

    fake = SimpleNamespace(dropout=F.dropout, scaled_dot_product_attention=sdpa)
    monkeypatch.setattr(v1_attention, "F", fake)  # the fused path of the one attention core
    with pytest.raises(AssertionError, match="leaks"):
        check_no_leak(small_gpt(8), tokens(8, 11, 6), 11)


def test_the_gpt_block_is_v4s_block_and_stacks_like_one():
    """GPT-2's block is TransformerBlock configured, so v4's stack takes it as it is."""
    from transformer.v4_block import TransformerBlock, TransformerEncoder
    from transformer.v5_gpt import gpt_block

    config = GPTConfig(vocab_size=9, n_positions=12, n_embd=16, n_layer=2, n_head=4)
    torch.manual_seed(0)
    gpt = GPT(config).eval()
    stack = TransformerEncoder(gpt_block(config), 2).eval()
    assert type(stack.layers[0]) is TransformerBlock and type(gpt.h[0]) is TransformerBlock
    stack.layers.load_state_dict(gpt.h.state_dict())  # the same weights, block by block
    x = torch.randn(3, 12, 16)  # (B, T, E)
    expected = x
    for block in gpt.h:
        expected = block(expected, is_causal=True)
    assert_close(stack(x, is_causal=True), expected, "stack of GPT blocks, causal")
    assert not torch.allclose(stack(x), expected, atol=1e-4)  # and is_causal reached them
