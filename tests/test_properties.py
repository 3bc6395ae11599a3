"""Properties that hold for any input (hypothesis)."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer import NEXT_TOKEN, ModelConfig, get_stage, list_stages
from transformer.v1_basic_attention import attention
from transformer.v2_multihead import MultiHeadAttention

PROPERTY_SETTINGS = settings(max_examples=40, deadline=None)


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    tgt_len=st.integers(1, 8),
    src_len=st.integers(1, 8),
    d_k=st.integers(1, 8),
    scale=st.floats(0.01, 30.0),
)
def test_attention_rows_sum_to_one(seed, tgt_len, src_len, d_k, scale):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(2, tgt_len, d_k, generator=gen) * scale
    k = torch.randn(2, src_len, d_k, generator=gen) * scale
    v = torch.randn(2, src_len, 3, generator=gen)
    mask = torch.rand(tgt_len, src_len, generator=gen) > 0.5
    mask[:, 0] = True
    _, weights = attention(q, k, v, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, tgt_len))
    assert (weights >= 0).all() and (weights[:, ~mask] == 0).all()


@PROPERTY_SETTINGS
@given(seed=st.integers(0, 2**31 - 1), seq_len=st.integers(2, 8), heads=st.integers(1, 3))
def test_permuting_tokens_permutes_the_output(seed, seq_len, heads):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(4 * heads, heads, batch_first=True)
    x = torch.randn(2, seq_len, 4 * heads)
    perm = torch.randperm(seq_len)
    out, weights = mha(x, x, x)
    out_perm, weights_perm = mha(x[:, perm], x[:, perm], x[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm])
    torch.testing.assert_close(weights_perm, weights[:, perm][:, :, perm])
    q, k, v = x, x + 1, x * 2
    out_v1, _ = attention(q, k, v)
    out_v1_perm, _ = attention(q[:, perm], k[:, perm], v[:, perm])
    torch.testing.assert_close(out_v1_perm, out_v1[:, perm])


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**31 - 1),
    seq_len=st.integers(2, 10),
    version=st.sampled_from([stage.version for stage in list_stages(NEXT_TOKEN)]),
    data=st.data(),
)
def test_causal_mask_hides_the_future(seed, seq_len, version, data):
    """Changing token t+1 leaves every output at or before t unchanged."""
    t = data.draw(st.integers(0, seq_len - 2))
    torch.manual_seed(seed)
    heads = None if version == "v1" else 2  # v1 has one head
    config = ModelConfig(vocab_size=7, d_model=8, num_heads=heads, num_layers=2, causal=True)
    model = get_stage(version).build_model(config)
    tokens = torch.randint(0, 7, (1, seq_len))
    changed = tokens.clone()
    changed[0, t + 1] = (tokens[0, t + 1] + 1) % 7
    before, after = model(tokens), model(changed)
    torch.testing.assert_close(after[:, : t + 1], before[:, : t + 1], atol=0, rtol=0)
    assert not torch.equal(after[:, t + 1], before[:, t + 1])
