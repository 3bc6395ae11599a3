"""Bad input raises an error that names the argument, what was expected and what came."""

import re

import pytest
import torch

from transformer import ModelConfig, get_stage
from transformer.v1_basic_attention import MultiHeadAttention as SeedMultiHeadAttention
from transformer.v1_basic_attention import attention
from transformer.v2_multihead import MultiHeadAttention
from transformer.v3_positional import (
    PositionalModel,
    SinusoidalPositionalEncoding,
    sinusoidal_encoding,
)
from transformer.v4_block import TransformerBlock, TransformerEncoder
from transformer.v5_gpt import (
    GPT,
    GPTConfig,
    from_hf_state_dict,
    load_gpt2_checkpoint,
    to_hf_state_dict,
)
from transformer.v5_gpt.hf import config_from_hf


def randn(*shape, dtype=torch.float32):
    return torch.randn(*shape, dtype=dtype)


MHA = MultiHeadAttention(8, 2, batch_first=True)
MHA_SEQ_FIRST = MultiHeadAttention(8, 2, kdim=4, vdim=6)
SEED_MHA = SeedMultiHeadAttention(8, 2)
MODEL = get_stage("v2").build_model(ModelConfig(vocab_size=10, d_model=8, num_heads=2))
X = randn(2, 5, 8)
BLOCK = TransformerBlock(8, 2, 16, batch_first=True)
POSITIONAL = PositionalModel(ModelConfig(vocab_size=10, d_model=8, num_heads=2, max_len=4))

# (id, callable, exception type, exact message pattern)
CASES = [
    # constructors
    (
        "embed_dim not divisible",
        lambda: MultiHeadAttention(10, 3),
        ValueError,
        r"embed_dim: expected a multiple of num_heads=3, got 10",
    ),
    (
        "embed_dim not positive",
        lambda: MultiHeadAttention(0, 1),
        ValueError,
        r"embed_dim: expected a positive integer, got 0",
    ),
    (
        "num_heads not an int",
        lambda: MultiHeadAttention(8, 2.0),
        ValueError,
        r"num_heads: expected a positive integer, got 2.0",
    ),
    (
        "dropout out of range",
        lambda: MultiHeadAttention(8, 2, dropout=1.5),
        ValueError,
        r"dropout: expected a float in \[0, 1\), got 1.5",
    ),
    (
        "kdim not positive",
        lambda: MultiHeadAttention(8, 2, kdim=-1),
        ValueError,
        r"kdim: expected a positive integer, got -1",
    ),
    (
        "seed d_model not divisible",
        lambda: SeedMultiHeadAttention(6, 4),
        ValueError,
        r"d_model: expected a multiple of num_heads=4, got 6",
    ),
    (
        "config d_model not divisible",
        lambda: ModelConfig(vocab_size=5, d_model=6, num_heads=4),
        ValueError,
        r"d_model: expected a multiple of num_heads=4, got 6",
    ),
    (
        "config vocab_size",
        lambda: ModelConfig(vocab_size=0),
        ValueError,
        r"vocab_size: expected a positive integer, got 0",
    ),
    # v2 forward: ranks, sizes, dtypes
    (
        "query rank",
        lambda: MHA(randn(2, 2, 5, 8), X, X),
        ValueError,
        r"query: expected a 2-D or 3-D tensor \(batch, seq_len, feature\), or unbatched "
        r"\(seq_len, feature\), got 4-D with shape \(2, 2, 5, 8\)",
    ),
    (
        "key rank differs",
        lambda: MHA(X, randn(5, 8), X),
        ValueError,
        r"key: expected a 3-D tensor like query \(2, 5, 8\), got 2-D with shape \(5, 8\)",
    ),
    (
        "query features",
        lambda: MHA(randn(2, 5, 7), X, X),
        ValueError,
        r"query: expected embed_dim = 8 \(dim -1\), got 7 in shape \(2, 5, 7\)",
    ),
    (
        "key features vs kdim",
        lambda: MHA_SEQ_FIRST(randn(5, 2, 8), randn(3, 2, 8), randn(3, 2, 6)),
        ValueError,
        r"key: expected kdim = 4 \(dim -1\), got 8 in shape \(3, 2, 8\)",
    ),
    (
        "value features vs vdim",
        lambda: MHA_SEQ_FIRST(randn(5, 2, 8), randn(3, 2, 4), randn(3, 2, 4)),
        ValueError,
        r"value: expected vdim = 6 \(dim -1\), got 4 in shape \(3, 2, 4\)",
    ),
    (
        "batch mismatch",
        lambda: MHA(X, randn(3, 5, 8), randn(3, 5, 8)),
        ValueError,
        r"key: expected batch, as in query = 2 \(dim 0\), got 3 in shape \(3, 5, 8\)",
    ),
    (
        "batch mismatch seq-first",
        lambda: MHA_SEQ_FIRST(randn(5, 2, 8), randn(3, 1, 4), randn(3, 1, 6)),
        ValueError,
        r"key: expected batch, as in query = 2 \(dim 1\), got 1 in shape \(3, 1, 4\)",
    ),
    (
        "key/value length mismatch",
        lambda: MHA(X, randn(2, 4, 8), randn(2, 6, 8)),
        ValueError,
        r"value: expected src_len, as in key = 4 \(dim 1\), got 6 in shape \(2, 6, 8\)",
    ),
    (
        "query dtype",
        lambda: MHA(randn(2, 5, 8, dtype=torch.float64), X, X),
        TypeError,
        r"query: expected dtype torch.float32 \(the module's parameter dtype\), got torch.float64",
    ),
    (
        "integer query",
        lambda: MHA(torch.ones(2, 5, 8, dtype=torch.long), X, X),
        TypeError,
        r"query: expected a floating-point tensor, got dtype torch.int64",
    ),
    # v2 masks
    (
        "attn_mask 2-D shape",
        lambda: MHA(X, X, X, attn_mask=torch.zeros(5, 4, dtype=torch.bool)),
        ValueError,
        r"attn_mask: expected shape \(tgt_len=5, src_len=5\), got \(5, 4\)",
    ),
    (
        "attn_mask 3-D shape",
        lambda: MHA(X, X, X, attn_mask=torch.zeros(2, 5, 5, dtype=torch.bool)),
        ValueError,
        r"attn_mask: expected shape \(batch\*num_heads=4, tgt_len=5, src_len=5\), got "
        r"\(2, 5, 5\)",
    ),
    (
        "attn_mask rank",
        lambda: MHA(X, X, X, attn_mask=torch.zeros(5, dtype=torch.bool)),
        ValueError,
        r"attn_mask: expected a 2-D \(tgt_len, src_len\) or 3-D \(batch\*num_heads, "
        r"tgt_len, src_len\) tensor, got 1-D with shape \(5,\)",
    ),
    (
        "attn_mask dtype",
        lambda: MHA(X, X, X, attn_mask=torch.zeros(5, 5, dtype=torch.long)),
        TypeError,
        r"attn_mask: expected dtype torch.bool \(True = blocked\) or a floating-point "
        r"additive mask, got torch.int64",
    ),
    (
        "key_padding_mask transposed",
        lambda: MHA(
            randn(2, 7, 8),
            randn(2, 7, 8),
            randn(2, 7, 8),
            key_padding_mask=torch.zeros(7, 2, dtype=torch.bool),
        ),
        ValueError,
        r"key_padding_mask: expected shape \(batch=2, src_len=7\), got \(7, 2\)",
    ),
    (
        "key_padding_mask dtype",
        lambda: MHA(X, X, X, key_padding_mask=torch.zeros(2, 5, dtype=torch.int32)),
        TypeError,
        r"key_padding_mask: expected dtype torch.bool .* got torch.int32",
    ),
    (
        "is_causal without attn_mask",
        lambda: MHA(X, X, X, is_causal=True),
        ValueError,
        r"is_causal: .* expected attn_mask to be given, got None",
    ),
    # v1
    (
        "v1 query/key features",
        lambda: attention(randn(2, 3, 4), randn(2, 5, 6), randn(2, 5, 6)),
        ValueError,
        r"key: expected feature size d_k = 4 like query, got 6 in shape \(2, 5, 6\)",
    ),
    (
        "v1 key/value lengths",
        lambda: attention(randn(2, 3, 4), randn(2, 5, 4), randn(2, 6, 4)),
        ValueError,
        r"value: expected seq_len = 5 like key \(one value per key\), got 6 in shape "
        r"\(2, 6, 4\)",
    ),
    (
        "v1 batch mismatch",
        lambda: attention(randn(2, 3, 4), randn(3, 5, 4), randn(3, 5, 4)),
        ValueError,
        r"key: expected leading \(batch, head\) sizes \(2,\) like query, got \(3,\)",
    ),
    (
        "v1 rank",
        lambda: attention(randn(4), randn(4), randn(4)),
        ValueError,
        r"query: expected at least a 2-D tensor \(..., seq_len, d_k\), got 1-D with shape \(4,\)",
    ),
    (
        "v1 mask shape",
        lambda: attention(randn(2, 3, 4), randn(2, 5, 4), randn(2, 5, 4), torch.ones(5, 3)),
        ValueError,
        r"mask: expected a shape broadcastable to the scores \(2, 3, 5\) .*got \(5, 3\)",
    ),
    (
        "v1 additive mask",
        lambda: attention(
            randn(1, 2, 4),
            randn(1, 2, 4),
            randn(1, 2, 4),
            torch.tensor([[0.0, float("-inf")], [0.0, 0.0]]),
        ),
        ValueError,
        r"mask: expected bool or 0/1 values \(1 = attend, 0 = blocked\), got the value "
        r"-inf",
    ),
    (
        "v1 seed MHA features",
        lambda: SEED_MHA(randn(2, 5, 6), X, X),
        ValueError,
        r"query: expected d_model = 8 \(dim -1\), got 6 in shape \(2, 5, 6\)",
    ),
    # contract
    (
        "tokens dtype",
        lambda: MODEL(torch.zeros(2, 5)),
        TypeError,
        r"tokens: expected integer token ids \(torch.long\), got torch.float32",
    ),
    (
        "tokens rank",
        lambda: MODEL(torch.zeros(5, dtype=torch.long)),
        ValueError,
        r"tokens: expected a 2-D tensor of token ids \(batch, seq_len\), got 1-D with shape \(5,\)",
    ),
    (
        "tokens out of range",
        lambda: MODEL(torch.tensor([[1, 12]])),
        ValueError,
        r"tokens: expected ids in \[0, vocab_size=10\), got values from 1 to 12",
    ),
    # v3
    (
        "encoding table of no length",
        lambda: sinusoidal_encoding(0, 8),
        ValueError,
        r"max_len: expected a positive integer, got 0",
    ),
    (
        "unknown positional kind",
        lambda: PositionalModel(ModelConfig(vocab_size=5), positional="rope"),
        ValueError,
        r"positional: expected 'sinusoidal' or 'learned' for v3, got 'rope'",
    ),
    (
        "sequence longer than max_len",
        lambda: POSITIONAL(torch.zeros(1, 5, dtype=torch.long)),
        ValueError,
        r"tokens: expected seq_len <= max_len=4, got seq_len=5; build the model with a larger",
    ),
    (
        "positions of the wrong width",
        lambda: SinusoidalPositionalEncoding(16, 8)(randn(1, 4, 6)),
        ValueError,
        r"x: expected last dimension d_model=8, got shape \(1, 4, 6\)",
    ),
    # v4
    (
        "unknown activation",
        lambda: TransformerBlock(8, 2, activation="tanh"),
        ValueError,
        r"activation: expected one of relu, gelu or a callable, got 'tanh'",
    ),
    (
        "activation not callable",
        lambda: TransformerBlock(8, 2, activation=3),
        TypeError,
        r"activation: expected a string or a callable, got 3",
    ),
    (
        "no feed-forward width",
        lambda: TransformerBlock(8, 2, dim_feedforward=0),
        ValueError,
        r"dim_feedforward: expected a positive integer, got 0",
    ),
    (
        "block dropout out of range",
        lambda: TransformerBlock(8, 2, dropout=1.0),
        ValueError,
        r"dropout: expected a float in \[0, 1\), got 1.0",
    ),
    (
        "block input of the wrong width",
        lambda: BLOCK(randn(2, 5, 6)),
        ValueError,
        r"src: expected d_model = 8 \(dim -1\), got 6 in shape \(2, 5, 6\)",
    ),
    (
        "block input of the wrong rank",
        lambda: BLOCK(randn(5, 8, 1, 1)),
        ValueError,
        r"src: expected a 2-D or 3-D tensor \(batch, seq_len, d_model\), or unbatched",
    ),
    (
        "stack of no layers",
        lambda: TransformerEncoder(BLOCK, 0),
        ValueError,
        r"num_layers: expected a positive integer, got 0",
    ),
    (
        "stack of something else",
        lambda: TransformerEncoder(torch.nn.Linear(8, 8), 2),
        TypeError,
        r"encoder_layer: expected a block \(forward\(src, src_mask, src_key_padding_mask, "
        r"is_causal\)\), got Linear with forward\(input: torch.Tensor\) -> torch.Tensor",
    ),
    (
        "not a tensor",
        lambda: MHA([[1.0]], X, X),
        TypeError,
        r"query: expected a torch.Tensor, got list",
    ),
]


# v5
V5_CONFIG = GPTConfig(vocab_size=10, n_positions=4, n_embd=8, n_layer=1, n_head=2)
V5 = GPT(V5_CONFIG)
V5_IDS = torch.zeros(1, 2, dtype=torch.long)


def v5_state(**changes):
    """GPT-2 weights of V5 with some keys replaced (None deletes the key)."""
    state = to_hf_state_dict(V5) | changes
    return {key: value for key, value in state.items() if value is not None}


CASES += [
    (
        "gpt heads do not divide n_embd",
        lambda: GPTConfig(vocab_size=5, n_embd=10, n_head=4),
        ValueError,
        r"n_embd: expected a multiple of n_head=4, got 10",
    ),
    (
        "gpt dropout out of range",
        lambda: GPTConfig(vocab_size=5, attn_pdrop=1.0),
        ValueError,
        r"attn_pdrop: expected a float in \[0, 1\), got 1.0",
    ),
    (
        "gpt layer norm epsilon",
        lambda: GPTConfig(vocab_size=5, layer_norm_epsilon=0),
        ValueError,
        r"layer_norm_epsilon: expected a positive float, got 0",
    ),
    (
        "gpt config unknown key",
        lambda: GPTConfig.from_dict({"vocab_size": 5, "n_embed": 8}),
        ValueError,
        r"values: expected only GPTConfig fields \(vocab_size, n_positions, .*\), "
        r"got \['n_embed'\]",
    ),
    (
        "gpt given a ModelConfig",
        lambda: GPT(ModelConfig(vocab_size=5)),
        TypeError,
        r"config: expected a GPTConfig, got ModelConfig",
    ),
    (
        "gpt context longer than n_positions",
        lambda: V5(torch.zeros(1, 5, dtype=torch.long)),
        ValueError,
        r"idx: expected seq_len <= n_positions=4, got seq_len=5; keep the last n_positions tokens",
    ),
    (
        "gpt ids out of range",
        lambda: V5(torch.tensor([[0, 10]])),
        ValueError,
        r"idx: expected ids in \[0, vocab_size=10\), got values from 0 to 10",
    ),
    (
        "gpt float ids",
        lambda: V5(torch.zeros(1, 3)),
        TypeError,
        r"idx: expected integer token ids \(torch.long\), got torch.float32",
    ),
    (
        "generate negative temperature",
        lambda: V5.generate(V5_IDS, 2, temperature=-1.0),
        ValueError,
        r"temperature: expected a finite float >= 0 \(0 = greedy argmax\), got -1.0",
    ),
    (
        "generate top_k of zero",
        lambda: V5.generate(V5_IDS, 2, top_k=0),
        ValueError,
        r"top_k: expected None or a positive integer, got 0",
    ),
    (
        "generate a negative number of tokens",
        lambda: V5.generate(V5_IDS, -1),
        ValueError,
        r"max_new_tokens: expected a non-negative integer, got -1",
    ),
    (
        "conv1d weight in nn.Linear layout",
        lambda: from_hf_state_dict(
            V5_CONFIG,
            v5_state(**{"transformer.h.0.attn.c_attn.weight": torch.zeros(24, 8)}),
        ),
        ValueError,
        r"transformer.h.0.attn.c_attn.weight: expected shape \(8, 24\) \(Conv1D stores "
        r"\(in, out\)\), got \(24, 8\)",
    ),
    (
        "gpt-2 state dict missing a key",
        lambda: from_hf_state_dict(V5_CONFIG, v5_state(**{"transformer.ln_f.bias": None})),
        ValueError,
        r"state_dict: expected GPT-2's keys for n_layer=1, got 1 missing "
        r"\['transformer.ln_f.bias'\] and 0 unexpected \[\]",
    ),
    (
        "gpt-2 head not tied",
        lambda: from_hf_state_dict(V5_CONFIG, v5_state(**{"lm_head.weight": torch.ones(10, 8)})),
        ValueError,
        r"lm_head.weight: expected the token embedding transformer.wte.weight \(tied, as in "
        r"GPT-2\), got a different matrix",
    ),
    (
        "gpt-2 config with the exact gelu",
        lambda: config_from_hf({"activation_function": "gelu"}),
        ValueError,
        r"activation_function: expected GELU with the tanh approximation \(gelu_new, "
        r"gelu_pytorch_tanh, gelu_fast\), got 'gelu'",
    ),
    (
        "gpt-2 config scaling attention by layer",
        lambda: config_from_hf({"scale_attn_by_inverse_layer_idx": True}),
        ValueError,
        r"scale_attn_by_inverse_layer_idx: expected False \(GPT has no other form\), got True",
    ),
    (
        "gpt-2 checkpoint folder missing",
        lambda: load_gpt2_checkpoint("/no/such/checkpoint"),
        FileNotFoundError,
        r"directory: expected a GPT-2 checkpoint folder with config.json and model.safetensors "
        r"\(as save_pretrained writes\), got '/no/such/checkpoint': no such directory",
    ),
    (
        "v5 contract model that is not causal",
        lambda: get_stage("v5").build_model(ModelConfig(vocab_size=5, causal=False)),
        ValueError,
        r"causal: expected True for v5 \(a GPT is decoder-only: .*\), got False",
    ),
]


def test_at_least_15_distinct_bad_inputs():
    assert len({case[0] for case in CASES}) == len(CASES) >= 15


@pytest.mark.parametrize(
    ("fn", "error", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_input_message(fn, error, pattern):
    with pytest.raises(error) as info:
        fn()
    message = str(info.value)
    assert re.fullmatch(pattern, message) or re.match(pattern, message), message
    assert "expected" in message and "got" in message
