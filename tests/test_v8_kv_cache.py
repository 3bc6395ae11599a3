"""v8's key/value cache: cached logits equal uncached ones at every step, greedy tokens equal
Hugging Face's ``generate`` with its cache (GPT-2 and Llama), left-padded batches equal
each row alone, the window is handled as documented, and the tiled backend changes no logit.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from tests.reference import assert_close
from tests.test_v5_gpt import hf_model
from tests.test_v7_modern import from_hf, hf_llama, picker, randomise, tokens
from transformer.v1_basic_attention import merge_heads
from transformer.v5_gpt import GPT, GPTConfig, from_hf_gpt2
from transformer.v7_modern import ModernConfig, ModernGPT
from transformer.v7_modern.attention import repeat_kv
from transformer.v8_efficient import EfficientGPT, KVCache, attend_mask


def random_model(seed: int) -> EfficientGPT:
    """A random tiny v8 decoder. Seeds 0-3 are v5 GPTs (converted), the others v7 configs
    covering learned/RoPE positions, both norms and MLPs, and MHA, GQA and MQA."""
    pick = picker(seed)
    torch.manual_seed(seed)
    if seed < 4:
        n_head = pick(1, 2, 4)
        config = GPTConfig(
            vocab_size=pick(13, 29), n_positions=pick(12, 17), n_embd=n_head * pick(4, 6),
            n_layer=pick(1, 2, 3), n_head=n_head,
        )  # fmt: skip
        return EfficientGPT.from_model(randomise(GPT(config), seed)).eval()
    kind = ("mha", "gqa", "mqa")[seed % 3]
    kv_heads = pick(1, 2, 3)
    n_head = {"mha": kv_heads, "gqa": 2 * kv_heads, "mqa": pick(2, 4)}[kind]
    config = ModernConfig(
        vocab_size=pick(11, 31), n_positions=pick(10, 16, 21), n_embd=n_head * pick(4, 8),
        n_layer=pick(1, 2, 3), n_head=n_head, n_kv_head=1 if kind == "mqa" else kv_heads,
        positions=pick("rope", "learned"), norm=pick("rmsnorm", "layernorm"),
        mlp=pick("swiglu", "gelu"), bias=pick(True, False), tie_word_embeddings=pick(True, False),
        rope_theta=pick(10000.0, 500.0),
    )  # fmt: skip
    return EfficientGPT.from_model(randomise(ModernGPT(config), seed)).eval()


CONFIG_SEEDS = range(24)


def test_the_random_configs_cover_every_kind():
    models = [random_model(seed) for seed in CONFIG_SEEDS]
    ratios = {m.config.n_head // m.config.kv_heads for m in models}
    assert {1, 2} <= ratios and any(m.config.kv_heads == 1 < m.config.n_head for m in models)
    assert {m.config.positions for m in models} == {"rope", "learned"}
    assert {m.config.mlp for m in models} == {"swiglu", "gelu"}


@pytest.mark.parametrize("seed", CONFIG_SEEDS)
def test_cached_logits_equal_uncached_at_every_step(seed):
    model = random_model(seed)
    n = model.config.n_positions
    text = tokens(seed, model.config.vocab_size, n, batch=1 + seed % 3)
    prompt = 1 + seed % 4
    full = model(text)  # (B, n, V): every prefix's logits at once, no cache
    cache = model.new_cache()
    steps = [model.decode(text[:, :prompt], cache)]  # (B, prompt, V)
    for t in range(prompt, n):  # one token per step, from the cache
        steps.append(model.decode(text[:, t : t + 1], cache))
    assert cache.length == n
    assert_close(torch.cat(steps, dim=1), full, f"cached logits, seed {seed}")


@pytest.mark.parametrize("seed", CONFIG_SEEDS)
def test_greedy_tokens_are_the_same_with_and_without_the_cache(seed):
    model = random_model(seed)
    prompt = tokens(seed, model.config.vocab_size, 2, batch=2)
    new = model.config.n_positions - 2
    uncached = model.generate(prompt, new, temperature=0, use_cache=False)
    assert torch.equal(model.generate(prompt, new, temperature=0), uncached)


def test_sampling_with_the_cache_draws_the_same_tokens():
    model = random_model(5)
    prompt = tokens(5, model.config.vocab_size, 3, batch=3)

    def drawn(use_cache: bool) -> Tensor:
        gen = torch.Generator().manual_seed(7)
        return model.generate(prompt, 6, 0.9, top_k=5, generator=gen, use_cache=use_cache)

    assert torch.equal(drawn(True), drawn(False))


@pytest.mark.parametrize("seed", range(3))
def test_greedy_tokens_equal_hf_gpt2_generate_with_its_cache(seed):
    hf = hf_model(seed, dropout=(0.0, 0.0, 0.0)).eval()
    prompt = tokens(seed, hf.config.vocab_size, 1 + seed, batch=2)
    new = hf.config.n_positions - prompt.shape[1]
    theirs = hf.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
        min_new_tokens=new, do_sample=False, pad_token_id=0, use_cache=True,
    )  # fmt: skip
    ours = EfficientGPT.from_model(from_hf_gpt2(hf)).eval()
    assert torch.equal(ours.generate(prompt, new, temperature=0), theirs)


@pytest.mark.parametrize("seed", range(6))
def test_greedy_tokens_equal_hf_llama_generate_with_its_cache(seed):
    hf = hf_llama(seed)
    prompt = tokens(seed, hf.config.vocab_size, 1 + seed % 3)
    new = hf.config.max_position_embeddings - prompt.shape[1]
    theirs = hf.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=new,
        min_new_tokens=new, do_sample=False, pad_token_id=0, use_cache=True,
    )  # fmt: skip
    ours = EfficientGPT.from_model(from_hf(hf)).eval()
    assert torch.equal(ours.generate(prompt, new, temperature=0), theirs)


# ---- batched generation with left padding ----


def left_padded(rows: list[Tensor], pad: int = 0) -> tuple[Tensor, Tensor]:
    """Rows of different lengths -> ids (B, T) padded on the left, attention_mask (B, T)."""
    width = max(len(row) for row in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :], mask[i, width - len(row) :] = row, 1
    return ids, mask


def ragged_prompts(seed: int, vocab: int) -> list[Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randint(0, vocab, (length,), generator=gen) for length in (5, 1, 3)]


@pytest.mark.parametrize("seed", [0, 4, 5, 7, 9, 14])
def test_left_padded_rows_generate_what_each_row_generates_alone(seed):
    model = random_model(seed)
    rows = ragged_prompts(seed, model.config.vocab_size)
    ids, mask = left_padded(rows, pad=1)
    new = model.config.n_positions - ids.shape[1]
    for use_cache in (True, False):
        batched = model.generate(ids, new, temperature=0, attention_mask=mask, use_cache=use_cache)
        for i, row in enumerate(rows):
            alone = model.generate(row[None], new, temperature=0)
            assert torch.equal(batched[i, -new:], alone[0, -new:]), (use_cache, i)


def test_left_padded_logits_equal_each_row_alone():
    model = random_model(6)
    rows = ragged_prompts(6, model.config.vocab_size)
    ids, mask = left_padded(rows)
    batched = model.decode(ids, model.new_cache(), mask)  # (B, T, V)
    for i, row in enumerate(rows):
        assert_close(batched[i, -len(row) :], model(row[None])[0], f"row {i}")


def test_left_padded_batches_equal_hf_gpt2_generate():
    hf = hf_model(2, dropout=(0.0, 0.0, 0.0)).eval()
    ids, mask = left_padded(ragged_prompts(2, hf.config.vocab_size))
    new = hf.config.n_positions - ids.shape[1]
    theirs = hf.generate(
        ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
        pad_token_id=0, use_cache=True,
    )  # fmt: skip
    ours = EfficientGPT.from_model(from_hf_gpt2(hf)).eval()
    assert torch.equal(ours.generate(ids, new, temperature=0, attention_mask=mask), theirs)


@pytest.mark.parametrize("seed", [1, 2])
def test_left_padded_batches_equal_hf_llama_generate(seed):
    hf = hf_llama(seed)
    ids, mask = left_padded(ragged_prompts(seed, hf.config.vocab_size))
    new = hf.config.max_position_embeddings - ids.shape[1]
    theirs = hf.generate(
        ids, attention_mask=mask, max_new_tokens=new, min_new_tokens=new, do_sample=False,
        pad_token_id=0, use_cache=True,
    )  # fmt: skip
    ours = EfficientGPT.from_model(from_hf(hf)).eval()
    assert torch.equal(ours.generate(ids, new, temperature=0, attention_mask=mask), theirs)


# ---- past the context window ----


def test_learned_positions_past_the_window_give_the_uncached_tokens():
    model = random_model(0)  # a v5 GPT: learned positions
    n = model.config.n_positions
    prompt = tokens(0, model.config.vocab_size, n - 3, batch=2)
    expected = model.generate(prompt, 2 * n, temperature=0, use_cache=False)
    assert torch.equal(model.generate(prompt, 2 * n, temperature=0), expected)


def sliding_window_logits(model: EfficientGPT, idx: Tensor, window: int) -> Tensor:
    """A full forward pass where query i sees keys i - window < j <= i (explicit, here)."""
    t = idx.shape[1]
    query, key = torch.arange(t)[:, None], torch.arange(t)[None, :]
    band = (key <= query) & (key > query - window)  # (T, T)
    x = model.wte(idx)  # (B, T, E)
    for block in model.h:
        attn = block.self_attn
        q, k, v = attn.project(block.norm1(x))  # RoPE at positions 0..T-1
        groups = attn.num_heads // attn.num_kv_heads
        k, v = repeat_kv(k, groups), repeat_kv(v, groups)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=band)  # (B, H, T, D)
        x = x + attn.out_proj(merge_heads(out))
        x = x + block.mlp(block.norm2(x))
    return model.lm_head(model.ln_f(x))  # (B, T, V)


def test_rope_past_the_window_is_sliding_window_attention():
    model = random_model(5)
    assert model.config.positions == "rope"
    n = model.config.n_positions
    prompt = tokens(5, model.config.vocab_size, 4, batch=2)
    generated = model.generate(prompt, 2 * n, temperature=0)
    cache = model.new_cache()
    logits = [model.decode(generated[:, :4], cache)]
    for t in range(4, generated.shape[1] - 1):
        logits.append(model.decode(generated[:, t : t + 1], cache))
    assert cache.length == n  # the cache rolled: it never holds more than the window
    expected = sliding_window_logits(model, generated[:, :-1], n)
    assert_close(torch.cat(logits, dim=1), expected, "rolling cache vs banded mask")
    assert torch.equal(expected[:, 3:].argmax(-1), generated[:, 4:])
    assert not torch.allclose(expected, model(generated[:, :-1]), atol=1e-3)  # a real band


def test_a_rolling_cache_refuses_a_step_longer_than_its_window():
    model = random_model(5)
    n = model.config.n_positions
    cache = model.new_cache()
    model.decode(tokens(0, model.config.vocab_size, n - 2), cache)
    with pytest.raises(
        ValueError,
        match=r"idx: expected at most 2 tokens in this step \(the cache holds 8 of "
        r"n_positions=10; a rolling",
    ):
        model.decode(tokens(1, model.config.vocab_size, 3), cache)


def test_learned_positions_refuse_a_cached_step_past_n_positions():
    model = random_model(1)
    n = model.config.n_positions
    cache = model.new_cache()
    model.decode(tokens(0, model.config.vocab_size, n), cache)
    with pytest.raises(
        ValueError,
        match=rf"idx: expected at most 0 tokens .*holds {n} of n_positions={n}; learned "
        "positions stop",
    ):
        model.decode(tokens(1, model.config.vocab_size, 1), cache)


# ---- what the cache holds ----


@pytest.mark.parametrize("kv_heads, kind", [(4, "MHA"), (2, "GQA"), (1, "MQA")])
def test_cache_memory_per_token_is_layers_times_kv_heads_times_head_dim(kv_heads, kind):
    config = ModernConfig(vocab_size=20, n_positions=32, n_embd=32, n_layer=3, n_head=4,
                          n_kv_head=kv_heads)  # fmt: skip
    model = EfficientGPT(config).eval()
    cache = model.new_cache()
    model.decode(tokens(0, 20, 10, batch=1), cache)
    per_token = cache.nbytes() / cache.length
    assert per_token == 2 * 3 * kv_heads * (32 // 4) * 4, kind  # k and v, float32
    assert per_token == model.kv_cache_bytes_per_token()
    assert all(k.shape == (1, kv_heads, 10, 8) for k in cache.keys)


def test_attend_mask_aligns_the_queries_with_the_last_keys():
    mask = attend_mask(None, 2, 4, None)[0, 0]  # queries are keys 2 and 3
    assert mask.tolist() == [[True, True, True, False], [True, True, True, True]]
    padded = attend_mask(torch.tensor([[False, True, True]]), 3, 3, None)[0, 0]
    assert padded.tolist() == [[True, False, False], [False, True, False], [False, True, True]]
    assert attend_mask(None, 1, 5, None) is None and attend_mask(None, 3, 3, None) is None


def test_a_cache_keeps_positions_per_row_after_padding():
    cache = KVCache(1)
    positions, key_mask = cache.advance(torch.tensor([[False, True], [True, True]]), 2)
    assert positions.tolist() == [[0, 0], [0, 1]] and key_mask.tolist() == [[0, 1], [1, 1]]
    positions, _ = cache.advance(None, 1)
    assert positions.tolist() == [[1], [2]]


# ---- the tiled backend ----


def without_dropout(model: EfficientGPT) -> EfficientGPT:
    """Training mode without dropout (the tiled kernel has none)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    for block in model.h:
        block.self_attn.dropout = 0.0
    return model


@pytest.mark.parametrize("seed", range(0, 24, 3))
def test_the_tiled_backend_gives_the_same_logits_and_gradients(seed):
    model = without_dropout(random_model(seed).train())
    tiled = without_dropout(
        EfficientGPT.from_model(model, attention="tiled", block_size=1 + seed % 5)
    )
    idx = tokens(seed, model.config.vocab_size, model.config.n_positions, batch=2)
    results = []
    for m in (model, tiled):
        logits = m(idx)
        F.cross_entropy(logits.flatten(0, 1), idx.roll(-1, 1).flatten()).backward()
        results.append((logits, {n: p.grad for n, p in m.named_parameters()}))
    assert_close(results[1][0], results[0][0], "tiled logits")
    for name, grad in results[0][1].items():
        assert_close(results[1][1][name], grad, f"tiled grad of {name}")


def test_tiled_generation_with_padding_equals_sdpa():
    model = random_model(7)
    tiled = EfficientGPT.from_model(model, attention="tiled", block_size=2)
    ids, mask = left_padded(ragged_prompts(7, model.config.vocab_size))
    new = model.config.n_positions - ids.shape[1]
    expected = model.generate(ids, new, temperature=0, attention_mask=mask)
    assert torch.equal(tiled.generate(ids, new, temperature=0, attention_mask=mask), expected)


def test_the_efficient_model_is_v7_exactly_with_sdpa():
    torch.manual_seed(3)
    config = ModernConfig.llama(
        vocab_size=19, n_positions=12, n_embd=16, n_layer=2, n_head=4, n_kv_head=2
    )
    v7 = randomise(ModernGPT(config), 3).eval()
    idx = tokens(3, 19, 12)
    assert torch.equal(EfficientGPT.from_model(v7).eval()(idx), v7(idx))


# ---- bad input ----


def test_bad_arguments_name_themselves():
    model = random_model(4)
    idx = tokens(0, model.config.vocab_size, 3)
    with pytest.raises(ValueError, match=r"attention: expected one of sdpa, tiled, got 'flash'"):
        EfficientGPT(model.config, attention="flash")
    with pytest.raises(ValueError, match=r"attention_mask: expected a tensor of idx's shape "
                       r"\(2, 3\) .*got shape \(2, 4\)"):  # fmt: skip
        model.generate(idx, 2, attention_mask=torch.ones(2, 4))
    with pytest.raises(TypeError, match=r"attention_mask: expected a tensor .*got list"):
        model.generate(idx, 2, attention_mask=[[1, 1, 1]] * 2)
    with pytest.raises(ValueError, match=r"attention_mask: expected 0/1 values .*got the value 2"):
        model.generate(idx, 2, attention_mask=torch.full((2, 3), 2))
    with pytest.raises(
        ValueError, match=r"attention_mask: expected at least .*got row 0 all padding"
    ):
        model.generate(idx, 2, attention_mask=torch.tensor([[0, 0, 0], [1, 1, 1]]))
    with pytest.raises(TypeError, match=r"use_cache: expected True or False, got 'yes'"):
        model.generate(idx, 2, use_cache="yes")
    with pytest.raises(TypeError, match=r"model: expected a v5 GPT or a v7 ModernGPT"):
        EfficientGPT.from_model(torch.nn.Linear(2, 2))
    cache = model.new_cache()
    model.decode(idx, cache)
    with pytest.raises(ValueError, match=r"idx: expected batch 2 like the cache, got 3"):
        model.decode(tokens(0, model.config.vocab_size, 1, batch=3), cache)
    with pytest.raises(ValueError, match=r"cache: expected one for n_layer=.* layers, got 7"):
        model.decode(idx, KVCache(7))
    with pytest.raises(TypeError, match=r"cache: expected a KVCache"):
        model.decode(idx, {})
    tiled = EfficientGPT(ModernConfig(vocab_size=9, n_positions=8, n_embd=8, n_layer=1,
                                      n_head=2, attn_pdrop=0.1), attention="tiled")  # fmt: skip
    with pytest.raises(ValueError, match=r"'tiled' has no dropout .* attn_pdrop=0.1 in training"):
        tiled(tokens(0, 9, 4))
    assert tiled.eval()(tokens(0, 9, 4)).shape == (2, 4, 9)
