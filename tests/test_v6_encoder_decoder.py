"""v6: the decoder block, the decoder stack and the full Transformer against PyTorch's own,
and the seq2seq model's decoding."""

import inspect
import random

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from transformer import NEXT_TOKEN, SEQ2SEQ, ModelConfig, UnsupportedTaskError, get_stage
from transformer.v6_encoder_decoder import (
    Seq2SeqTransformer,
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    beam_search,
    greedy_decode,
    score_target,
)

ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "callable": lambda x: F.silu(x)}
MASK_KINDS = ("none", "causal_float", "causal_bool", "is_causal", "padding", "memory", "all")


def pair_of_transformers(config: dict) -> tuple[nn.Transformer, Transformer]:
    """PyTorch's nn.Transformer and ours with the same weights (copied from PyTorch's)."""
    reference = nn.Transformer(**config)
    ours = Transformer(**config)
    ours.load_state_dict(reference.state_dict())
    return reference, ours


def random_config(rng: random.Random) -> dict:
    heads = rng.choice([1, 2, 4])
    return {
        "d_model": heads * rng.choice([2, 4, 6]),
        "nhead": heads,
        "num_encoder_layers": rng.randint(1, 2),
        "num_decoder_layers": rng.randint(1, 2),
        "dim_feedforward": rng.choice([8, 16]),
        "dropout": 0.0,
        "activation": ACTIVATIONS[rng.choice(list(ACTIVATIONS))],
        "layer_norm_eps": rng.choice([1e-5, 1e-6]),
        "batch_first": rng.random() < 0.5,
        "norm_first": rng.random() < 0.5,
        "bias": rng.random() < 0.8,
    }


def padding(batch: int, length: int, rng: random.Random) -> torch.Tensor:
    """Key padding (batch, length), True = padded; every row keeps its first position."""
    mask = torch.zeros(batch, length, dtype=torch.bool)
    for row in range(batch):
        mask[row, rng.randint(1, length) :] = True
    return mask


def masks_for(kind: str, batch: int, src_len: int, tgt_len: int, rng: random.Random) -> dict:
    causal = nn.Transformer.generate_square_subsequent_mask(tgt_len)
    if kind == "none":
        return {}
    if kind == "causal_float":
        return {"tgt_mask": causal}
    if kind == "causal_bool":
        return {"tgt_mask": causal.isinf()}
    if kind == "is_causal":
        return {"tgt_mask": causal, "tgt_is_causal": True}
    if kind == "padding":
        pad = padding(batch, src_len, rng)
        return {"src_key_padding_mask": pad, "memory_key_padding_mask": pad}
    if kind == "memory":  # each target position may read source positions <= it + 1
        blocked = torch.ones(tgt_len, src_len, dtype=torch.bool).triu(2)
        return {"memory_mask": blocked, "src_mask": torch.zeros(src_len, src_len)}
    return {  # all of them at once, with a float src_mask
        "src_mask": torch.randn(src_len, src_len),
        "tgt_mask": causal,
        "memory_mask": torch.zeros(tgt_len, src_len),
        "src_key_padding_mask": padding(batch, src_len, rng),
        "tgt_key_padding_mask": padding(batch, tgt_len, rng),
        "memory_key_padding_mask": padding(batch, src_len, rng),
    }


def unbatch(masks: dict) -> dict:
    """Key-padding masks of one sequence for unbatched inputs."""
    return {k: v[0] if k.endswith("key_padding_mask") else v for k, v in masks.items()}


def check_against_pytorch(seed: int) -> None:
    rng = random.Random(seed)
    torch.manual_seed(seed)
    config = random_config(rng)
    reference, ours = pair_of_transformers(config)
    batch, src_len, tgt_len = rng.randint(1, 3), rng.randint(1, 6), rng.randint(1, 6)
    kind = MASK_KINDS[seed % len(MASK_KINDS)]
    masks = masks_for(kind, batch, src_len, tgt_len, rng)
    unbatched = seed % 5 == 4 and kind != "all"
    d = config["d_model"]
    if unbatched:
        src, tgt = torch.randn(src_len, d), torch.randn(tgt_len, d)
        masks = unbatch(masks)
    elif config["batch_first"]:
        src, tgt = torch.randn(batch, src_len, d), torch.randn(batch, tgt_len, d)
    else:
        src, tgt = torch.randn(src_len, batch, d), torch.randn(tgt_len, batch, d)
    outputs, grads = [], []
    for model in (reference, ours):
        src_in = src.clone().requires_grad_()
        tgt_in = tgt.clone().requires_grad_()
        out = model(src_in, tgt_in, **masks)
        (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum().backward()
        outputs.append(out)
        grads.append([src_in.grad, tgt_in.grad] + [p.grad for p in model.parameters()])
    context = f"seed {seed}, masks {kind}, unbatched {unbatched}, config {config}"
    torch.testing.assert_close(outputs[1], outputs[0], atol=1e-5, rtol=1e-5, msg=context)
    names = ["src", "tgt"] + [name for name, _ in reference.named_parameters()]
    for name, theirs, mine in zip(names, grads[0], grads[1], strict=True):
        if theirs is None:
            assert mine is None or not mine.any(), f"{name}: {context}"
            continue
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=1e-5, msg=f"{name}: {context}")


@pytest.mark.parametrize("seed", range(105))
def test_transformer_equals_pytorch_outputs_and_every_gradient(seed):
    check_against_pytorch(seed)


@pytest.mark.parametrize("norm_first", [False, True])
def test_eval_mode_equals_pytorch(norm_first):
    torch.manual_seed(0)
    config = {"d_model": 8, "nhead": 2, "num_encoder_layers": 2, "num_decoder_layers": 2,
              "dim_feedforward": 16, "batch_first": True, "norm_first": norm_first}  # fmt: skip
    reference, ours = pair_of_transformers(config)
    reference.eval(), ours.eval()
    src, tgt = torch.randn(2, 5, 8), torch.randn(2, 4, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    with torch.no_grad():
        torch.testing.assert_close(
            ours(src, tgt, tgt_mask=mask), reference(src, tgt, tgt_mask=mask), atol=1e-5, rtol=0
        )


def test_is_causal_alone_equals_the_causal_mask():
    torch.manual_seed(0)
    reference, ours = pair_of_transformers({"d_model": 8, "nhead": 2, "dim_feedforward": 16,
                                            "dropout": 0.0, "batch_first": True})  # fmt: skip
    src, tgt = torch.randn(2, 5, 8), torch.randn(2, 4, 8)
    mask = nn.Transformer.generate_square_subsequent_mask(4)
    torch.testing.assert_close(
        ours(src, tgt, tgt_is_causal=True), reference(src, tgt, tgt_mask=mask), atol=1e-5, rtol=0
    )


def test_generate_square_subsequent_mask_equals_pytorch():
    for size in (1, 2, 7):
        torch.testing.assert_close(
            Transformer.generate_square_subsequent_mask(size),
            nn.Transformer.generate_square_subsequent_mask(size),
        )
    assert (
        Transformer.generate_square_subsequent_mask(3, dtype=torch.float64).dtype == torch.float64
    )


@pytest.mark.parametrize(
    "ours, theirs",
    [
        (TransformerDecoderLayer, nn.TransformerDecoderLayer),
        (TransformerDecoder, nn.TransformerDecoder),
        (Transformer, nn.Transformer),
    ],
)
def test_signatures_are_pytorchs(ours, theirs):
    for method in ("__init__", "forward"):
        mine = list(inspect.signature(getattr(ours, method)).parameters)
        reference = list(inspect.signature(getattr(theirs, method)).parameters)
        assert mine == reference, method
        for name in reference:
            expected = inspect.signature(getattr(theirs, method)).parameters[name].default
            got = inspect.signature(getattr(ours, method)).parameters[name].default
            if name != "activation":  # PyTorch's default is the function F.relu, ours "relu"
                assert got == expected, f"{method}: {name}"


def test_state_dicts_load_both_ways():
    torch.manual_seed(0)
    config = {"d_model": 8, "nhead": 2, "num_encoder_layers": 2, "num_decoder_layers": 1,
              "dim_feedforward": 16, "dropout": 0.0}  # fmt: skip
    reference, ours = nn.Transformer(**config), Transformer(**config)
    assert list(reference.state_dict()) == list(ours.state_dict())
    reference.load_state_dict(ours.state_dict())  # ours -> PyTorch
    src, tgt = torch.randn(5, 2, 8), torch.randn(3, 2, 8)
    torch.testing.assert_close(ours(src, tgt), reference(src, tgt), atol=1e-5, rtol=0)
    layer_ref = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0)
    layer = TransformerDecoderLayer(8, 2, 16, dropout=0.0)
    layer_ref.load_state_dict(layer.state_dict())
    layer.load_state_dict(layer_ref.state_dict())
    torch.testing.assert_close(layer(tgt, src), layer_ref(tgt, src), atol=1e-5, rtol=0)


def test_the_decoder_stack_takes_pytorchs_layer_and_custom_parts_are_used():
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    ours = TransformerDecoder(layer, 2, nn.LayerNorm(8))
    reference = nn.TransformerDecoder(layer, 2, nn.LayerNorm(8))
    reference.load_state_dict(ours.state_dict())
    tgt, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    torch.testing.assert_close(ours(tgt, memory), reference(tgt, memory), atol=1e-5, rtol=0)
    encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, 0.0, batch_first=True), 1)
    model = Transformer(8, 2, dim_feedforward=16, custom_encoder=encoder, custom_decoder=ours,
                        batch_first=True)  # fmt: skip
    assert model.encoder is encoder and model.decoder is ours
    expected = ours(tgt, encoder(memory))
    torch.testing.assert_close(model(memory, tgt), expected, atol=1e-6, rtol=0)


def test_cross_attention_reads_the_memory_and_its_weights_sum_to_one():
    torch.manual_seed(0)
    layer = TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    tgt, memory = torch.randn(2, 3, 8), torch.randn(2, 5, 8)
    out, self_weights, cross_weights = layer.forward_with_attention(tgt, memory, tgt_is_causal=True)
    assert self_weights.shape == (2, 2, 3, 3) and cross_weights.shape == (2, 2, 3, 5)
    torch.testing.assert_close(cross_weights.sum(-1), torch.ones(2, 2, 3))
    assert torch.all(self_weights.triu(1) == 0)  # the target's self-attention is causal
    changed = memory.clone()
    changed[:, 2] += 1.0
    assert not torch.allclose(layer(tgt, changed, tgt_is_causal=True), out)


@pytest.mark.parametrize("norm_first", [False, True])
def test_gradcheck_in_float64(norm_first):
    torch.manual_seed(0)
    model = Transformer(4, 2, 1, 1, 8, dropout=0.0, batch_first=True, norm_first=norm_first,
                        dtype=torch.float64)  # fmt: skip
    src = torch.randn(2, 3, 4, dtype=torch.float64, requires_grad=True)
    tgt = torch.randn(2, 2, 4, dtype=torch.float64, requires_grad=True)
    pad = torch.tensor([[False, False, True], [False, False, False]])
    assert torch.autograd.gradcheck(
        lambda s, t: model(s, t, tgt_is_causal=True, src_key_padding_mask=pad,
                           memory_key_padding_mask=pad),
        (src, tgt),
    )  # fmt: skip


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda m: m(torch.randn(2, 5, 8), torch.randn(2, 3, 6)),
         r"tgt: expected d_model = 8 \(dim -1\), got 6 in shape \(2, 3, 6\)"),
        (lambda m: m(torch.randn(2, 5, 8), torch.randn(3, 8)),
         r"tgt: expected .*rank of src \(3\).*got"),
        (lambda m: m(torch.randn(2, 5, 8), torch.randn(3, 3, 8)),
         r"tgt: expected .*batch, as in src.*2.*got"),
        (lambda m: m(torch.randn(2, 5, 8), torch.randn(2, 3, 8),
                     memory_key_padding_mask=torch.zeros(2, 4, dtype=torch.bool)),
         r"key_padding_mask: expected shape \(batch=2, src_len=5\), got \(2, 4\)"),
    ],
)  # fmt: skip
def test_bad_inputs_are_named(call, message):
    model = Transformer(8, 2, 1, 1, 16, batch_first=True)
    with pytest.raises((ValueError, TypeError), match=message):
        call(model)


def test_a_decoder_layer_of_the_wrong_kind_is_refused():
    with pytest.raises(TypeError, match=r"decoder_layer: expected a decoder block"):
        TransformerDecoder(nn.Linear(2, 2), 2)
    with pytest.raises(TypeError, match=r"custom_encoder: expected None or an nn.Module"):
        Transformer(8, 2, custom_encoder="encoder")


# the seq2seq model and its decoding

BOS, EOS, VOCAB = 1, 2, 9


def seq2seq(seed: int, **options) -> Seq2SeqTransformer:
    torch.manual_seed(seed)
    config = ModelConfig(vocab_size=VOCAB, d_model=16, num_heads=2, max_len=24, options=options)
    return Seq2SeqTransformer(config).eval()


def test_the_model_is_the_transformer_between_scaled_tied_embeddings_and_positions():
    model = seq2seq(0)
    assert model.head.weight is model.embed.weight is model.target_embed.weight
    src, tgt = torch.tensor([[3, 4, 5, 6]]), torch.tensor([[1, 7, 8]])
    pe = model.positions.pe  # the sinusoidal table
    scale = 16**0.5
    x_src = model.embed.weight[src] * scale + pe[:4]
    x_tgt = model.embed.weight[tgt] * scale + pe[:3]
    mask = nn.Transformer.generate_square_subsequent_mask(3)
    expected = model.transformer(x_src, x_tgt, tgt_mask=mask) @ model.embed.weight.T
    with torch.no_grad():
        torch.testing.assert_close(model(src, tgt), expected, atol=1e-5, rtol=0)
    untied = seq2seq(0, tie_embeddings=False)
    assert untied.head.weight is not untied.embed.weight
    assert untied.target_embed is not untied.embed


def test_padding_the_source_changes_nothing():
    model = seq2seq(1)
    src, tgt = torch.tensor([[3, 4, 5]]), torch.tensor([[1, 6, 7, 8]])
    padded = torch.tensor([[3, 4, 5, 0, 0]])  # pad_id 0
    with torch.no_grad():
        torch.testing.assert_close(model(padded, tgt), model(src, tgt), atol=1e-5, rtol=0)
        model.source_padding = lambda src: None  # the mutation: padding not masked
        assert not torch.allclose(model(padded, tgt), model(src, tgt), atol=1e-4)


def test_the_decoder_is_causal():
    model = seq2seq(2)
    src = torch.tensor([[3, 4, 5]])
    tgt = torch.tensor([[1, 6, 7, 8]])
    changed = tgt.clone()
    changed[0, 3] = 3
    with torch.no_grad():
        a, b = model(src, tgt), model(src, changed)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[:, 3], b[:, 3])


def test_the_contract_records_that_v6_runs_seq2seq_only():
    stage = get_stage("v6")
    assert stage.tasks == (SEQ2SEQ,) and stage.encoder_decoder
    assert get_stage("v5").tasks == (NEXT_TOKEN, SEQ2SEQ)
    with pytest.raises(UnsupportedTaskError, match=r"v6 cannot run next-token tasks: its encoder"):
        stage.build_model(ModelConfig(vocab_size=5))
    with pytest.raises(ValueError, match=r"causal: expected it unset, since v6 has no such"):
        stage.resolve(ModelConfig(vocab_size=5, causal=True))


@pytest.mark.parametrize("seed", range(20))
def test_beam_size_one_is_greedy_and_beams_never_score_below_greedy(seed):
    model = seq2seq(seed)
    gen = torch.Generator().manual_seed(seed)
    src = torch.randint(3, VOCAB, (1, int(torch.randint(2, 7, (1,), generator=gen))), generator=gen)
    steps = 6
    greedy = greedy_decode(model, src, bos_id=BOS, eos_id=EOS, max_new_tokens=steps)[0]
    for penalty in (0.0, 0.6, 1.0):
        one = beam_search(model, src, bos_id=BOS, eos_id=EOS, max_new_tokens=steps, beam_size=1,
                          length_penalty=penalty)  # fmt: skip
        assert one.tokens == greedy
        greedy_score = score_target(
            model, src, greedy, bos_id=BOS, eos_id=EOS, finished=len(greedy) < steps,
            length_penalty=penalty,
        ).score  # fmt: skip
        for size in (2, 3, 5):
            found = beam_search(model, src, bos_id=BOS, eos_id=EOS, max_new_tokens=steps,
                                beam_size=size, length_penalty=penalty)  # fmt: skip
            rescored = score_target(model, src, found.tokens, bos_id=BOS, eos_id=EOS,
                                    finished=found.finished, length_penalty=penalty)  # fmt: skip
            assert found.score == pytest.approx(rescored.score, abs=1e-4)
            assert found.score >= greedy_score - 1e-5, (size, penalty)


def test_beam_search_finds_a_better_sequence_than_greedy_somewhere():
    """The search is not greedy in disguise: on some untrained models it finds a target
    the model scores higher than the greedy one."""
    better = 0
    for seed in range(30):
        model = seq2seq(seed)
        src = torch.tensor([[3, 4, 5, 6]])
        greedy = greedy_decode(model, src, bos_id=BOS, eos_id=EOS, max_new_tokens=5)[0]
        g = score_target(model, src, greedy, bos_id=BOS, eos_id=EOS,
                         finished=len(greedy) < 5, length_penalty=0.0).score  # fmt: skip
        found = beam_search(model, src, bos_id=BOS, eos_id=EOS, max_new_tokens=5, beam_size=4,
                            length_penalty=0.0)  # fmt: skip
        better += found.score > g + 1e-4
    assert better > 0


def test_greedy_decodes_a_batch_row_by_row():
    model = seq2seq(3)
    src = torch.tensor([[3, 4, 5, 0], [6, 7, 8, 4]])
    both = greedy_decode(model, src, bos_id=BOS, eos_id=EOS, max_new_tokens=5)
    first = greedy_decode(model, src[:1, :3], bos_id=BOS, eos_id=EOS, max_new_tokens=5)
    second = greedy_decode(model, src[1:], bos_id=BOS, eos_id=EOS, max_new_tokens=5)
    assert both == first + second


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m: m(torch.randn(1, 3), torch.tensor([[1]])), TypeError,
         r"src: expected integer token ids \(torch.long\), got torch.float32"),
        (lambda m: m(torch.tensor([[3, 9]]), torch.tensor([[1]])), ValueError,
         r"src: expected ids in \[0, vocab_size=9\), got values from 3 to 9"),
        (lambda m: m(torch.tensor([[3]]), torch.ones(1, 25, dtype=torch.long)), ValueError,
         r"tgt: .*max_len"),
        (lambda m: m(torch.tensor([[3], [4]]), torch.tensor([[1]])), ValueError,
         r"tgt: expected batch, as in src = 2 \(dim 0\), got 1"),
        (lambda m: m.beam_search(torch.tensor([[3], [4]]), bos_id=BOS, eos_id=EOS,
                                 max_new_tokens=3), ValueError,
         r"src: expected one source \(1, src_len\), got 2 rows"),
        (lambda m: m.beam_search(torch.tensor([[3]]), bos_id=BOS, eos_id=EOS, max_new_tokens=3,
                                 beam_size=0), ValueError, r"beam_size: expected a positive"),
        (lambda m: m.greedy_decode(torch.tensor([[3]]), bos_id=BOS, eos_id=EOS,
                                   max_new_tokens=0), ValueError,
         r"max_new_tokens: expected a positive"),
        (lambda m: m.beam_search(torch.tensor([[3]]), bos_id=BOS, eos_id=EOS, max_new_tokens=2,
                                 length_penalty=-1.0), ValueError, r"length_penalty: expected"),
    ],
)  # fmt: skip
def test_the_seq2seq_model_names_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call(seq2seq(0))


@pytest.mark.parametrize(
    "options, message",
    [
        ({"pad_id": -1}, r"pad_id: expected a token id >= 0, got -1"),
        ({"tie_embeddings": "yes"}, r"tie_embeddings: expected"),
        ({"norm_first": 1}, r"norm_first: expected"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises((TypeError, ValueError), match=message):
        get_stage("v6").resolve(ModelConfig(vocab_size=9, options=options))


class MarkovModel:
    """A stand-in 'model' whose next-token distribution depends on the last token only."""

    NEXT = {  # last token -> {next token: probability}; 0 pad, 1 BOS, 2 EOS, 3 A, 4 B, 5 C
        1: {3: 0.5, 4: 0.3, 5: 0.2},
        3: {2: 0.25, 3: 0.2, 4: 0.2, 5: 0.2, 0: 0.15},
        4: {5: 0.6, 2: 0.4},
        5: {2: 0.95, 3: 0.05},
    }

    class config:  # noqa: N801 (the attribute the decoders read)
        vocab_size = 6

    def encode(self, src):
        return torch.zeros(src.shape[0], 1, 1), None

    def decode(self, memory, padding, prefix):
        logits = torch.full((*prefix.shape, 6), -30.0)  # (B, t, V)
        for row, tokens in enumerate(prefix.tolist()):
            for position, token in enumerate(tokens):
                for nxt, p in self.NEXT.get(token, {2: 1.0}).items():
                    logits[row, position, nxt] = torch.tensor(p).log()
        return logits


def test_an_ending_ranked_below_the_beam_is_not_taken_as_finished():
    """Step 2 ranks B C (kept), A EOS (finished), B EOS (rank 2 of a 2-beam search: dropped).
    Counting B EOS as finished would stop the search there with A EOS; instead B C goes on
    and ends as B C EOS, which the model scores higher. Greedy decoding writes A, then EOS."""
    model, src = MarkovModel(), torch.tensor([[3]])
    settings = {"bos_id": 1, "eos_id": 2, "max_new_tokens": 5}
    assert greedy_decode(model, src, **settings) == [[3]]
    found = beam_search(model, src, beam_size=2, length_penalty=0.0, **settings)
    assert found.tokens == [4, 5] and found.finished
    assert found.log_prob == pytest.approx(float(torch.tensor([0.3, 0.6, 0.95]).log().sum()))


def test_decoding_refuses_ids_outside_the_vocabulary():
    with pytest.raises(ValueError, match=r"eos_id: expected a token id in \[0, vocab_size=9\)"):
        greedy_decode(seq2seq(0), torch.tensor([[3]]), bos_id=BOS, eos_id=99, max_new_tokens=2)


def test_memory_is_causal_needs_a_memory_mask_as_in_pytorch():
    layer = TransformerDecoderLayer(8, 2, 16, batch_first=True)
    reference = nn.TransformerDecoderLayer(8, 2, 16, batch_first=True)
    tgt, memory = torch.randn(1, 3, 8), torch.randn(1, 5, 8)
    with pytest.raises(Exception):  # noqa: B017 (PyTorch's own error, whatever its class)
        reference(tgt, memory, memory_is_causal=True)
    with pytest.raises(ValueError, match=r"memory_is_causal: .*expected memory_mask"):
        layer(tgt, memory, memory_is_causal=True)


def test_the_causal_mask_follows_the_default_device_and_dtype_as_in_pytorch():
    with torch.device("meta"):
        ours = Transformer.generate_square_subsequent_mask(3)
        theirs = nn.Transformer.generate_square_subsequent_mask(3)
    assert ours.device == theirs.device == torch.device("meta")
    assert ours.dtype == theirs.dtype
    assert Transformer.generate_square_subsequent_mask(0).shape == (0, 0)


def test_eval_with_only_a_source_padding_mask_differs_from_pytorchs_fast_path():
    """PyTorch's eval fast path (nested tensors) zeroes the encoder's output at padded
    positions, which the decoder then reads unless memory_key_padding_mask hides them; this
    encoder computes padded positions like any other (README: where the drop-ins differ).
    With both padding masks, as a seq2seq model passes them, the two agree."""
    torch.manual_seed(0)
    config = {"d_model": 8, "nhead": 2, "num_encoder_layers": 1, "num_decoder_layers": 1,
              "dim_feedforward": 16, "batch_first": True}  # fmt: skip
    reference, ours = pair_of_transformers(config)
    reference.eval(), ours.eval()
    src, tgt = torch.randn(2, 5, 8), torch.randn(2, 3, 8)
    pad = torch.tensor([[False] * 3 + [True] * 2, [False] * 5])
    with torch.no_grad():
        both = {"src_key_padding_mask": pad, "memory_key_padding_mask": pad}
        torch.testing.assert_close(ours(src, tgt, **both), reference(src, tgt, **both),
                                   atol=1e-5, rtol=0)  # fmt: skip
        only = {"src_key_padding_mask": pad}
        assert not torch.allclose(ours(src, tgt, **only), reference(src, tgt, **only), atol=1e-3)
