"""transformer.inspect: the activation cache, head ablation, head scores and direct logit
attribution, on hand-built models whose heads do one known thing each, and on every
registered next-token stage through the contract."""

import math
import shutil
from fractions import Fraction

import pytest
import torch
from torch import nn

from tests.test_layering import SRC, violations
from transformer import NEXT_TOKEN, ModelConfig, get_stage, list_stages
from transformer.inspect import (
    ablate_heads,
    direct_logit_attribution,
    duplicate_token_score,
    induction_score,
    k_back_score,
    model_parts,
    previous_token_score,
    repeated_random_tokens,
    run_with_cache,
)

VERSIONS = [stage.version for stage in list_stages(NEXT_TOKEN)]
CASES = [(version, {}) for version in VERSIONS] + [
    ("v3", {"scale_embeddings": True}),
    ("v4", {"norm_first": True}),
    ("v7", {"positions": "learned", "norm": "layernorm", "mlp": "gelu", "bias": True}),
]
CASE_IDS = [version + ("-" + "-".join(map(str, o.values())) if o else "") for version, o in CASES]
PRE_NORM = [
    i for i, (version, o) in enumerate(CASES) if version in ("v5", "v7") or o.get("norm_first")
]


def build(version: str, options: dict | None = None, seed: int = 0, vocab: int = 11):
    """A 2-layer model of ``version`` through the contract (4 heads, v1's one)."""
    torch.manual_seed(seed)
    heads = 1 if version == "v1" else 4
    config = ModelConfig(
        vocab_size=vocab, d_model=16, num_heads=heads, num_layers=2, options=options or {}
    )
    return get_stage(version).build_model(config).eval()


def hook_count(model: nn.Module) -> int:
    """How many forward hooks and pre-hooks are registered anywhere in ``model``."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def final_norm_of(model: nn.Module) -> nn.Module:
    return model.gpt.ln_f if hasattr(model, "gpt") else model.final_norm


def layers_of(model: nn.Module) -> nn.ModuleList:
    return model.gpt.h if hasattr(model, "gpt") else model.layers


# ---- a hand-built 2-layer v3 model: each head does one known thing ----

V, P, H, D = 8, 16, 3, 24  # vocabulary, positions, heads, head size
E = H * D  # d_model = 72
POS, PREV, OUT = V, V + P, V + P + V  # where positions, the previous token, the answer live
BIG = 1000 * math.sqrt(D)  # a score gap of 1000 after the 1/√D: softmax weights exactly 0 or 1


def q(head: int, d: int) -> int:
    """The row of in_proj_weight that makes query dimension d of ``head``."""
    return head * D + d


def k(head: int, d: int) -> int:
    return E + head * D + d


def v(head: int, d: int) -> int:
    return 2 * E + head * D + d


def col(head: int, d: int) -> int:
    """The column of out_proj.weight that reads dimension d of ``head``'s output."""
    return head * D + d


@torch.no_grad()
def hand_built_model():
    """A v3 model (learned positions, 2 layers, 3 heads of size 24, d_model 72) set by hand.

    Input: token t as e_t (dims 0..7), position p as e_{8+p} (dims 8..23).
    Layer 0: head 0 attends to itself and copies token and position (dims 0..23); head 1 is
    a previous-token head writing the previous token into dims 24..31; head 2 is a
    duplicate-token head (earlier copies of the query's token) whose output projection
    columns are zero, so it writes nothing.
    Layer 1: head 0 is an induction head: its query is the current token, its key the
    previous token (position 0 pushed away), and it writes the token it finds into dims
    32..39, which the head reads as the prediction. Heads 1 and 2 have no query or key
    (uniform attention) and zero output columns.
    """
    config = ModelConfig(
        vocab_size=V,
        d_model=E,
        num_heads=H,
        num_layers=2,
        max_len=P,
        options={"positional": "learned"},
    )
    model = get_stage("v3").build_model(config).eval()
    for parameter in model.parameters():
        parameter.zero_()
    model.embed.weight[:, :V] = torch.eye(V)
    model.positions.weight[:, POS : POS + P] = torch.eye(P)
    first, second = model.layers
    w, out = first.in_proj_weight, first.out_proj.weight
    for p in range(P):  # head 0: query position p matches key position p
        w[q(0, p), POS + p], w[k(0, p), POS + p] = BIG, 1.0
    for d in range(V + P):  # ... and copies token and position
        w[v(0, d), d], out[d, col(0, d)] = 1.0, 1.0
    for p in range(P):  # head 1: query position p matches key position p - 1
        w[k(1, p), POS + p] = 1.0
        if p >= 1:
            w[q(1, p - 1), POS + p] = BIG
    for t in range(V):  # ... and copies that token into PREV
        w[v(1, t), t], out[PREV + t, col(1, t)] = 1.0, 1.0
    for t in range(V):  # head 2: same token, +1000; itself, -1000; its value is never read
        w[q(2, t), t], w[k(2, t), t], w[v(2, t), t] = BIG, 1.0, 1.0
    for p in range(P):
        w[q(2, V + p), POS + p], w[k(2, V + p), POS + p] = -2 * BIG, 1.0
    w, out, bias = second.in_proj_weight, second.out_proj.weight, second.in_proj_bias
    for t in range(V):  # layer 1 head 0: query token t matches key whose previous token is t
        w[q(0, t), t], w[k(0, t), PREV + t] = BIG, 1.0
        w[v(0, t), t], out[OUT + t, col(0, t)] = 1.0, 1.0
    bias[q(0, V)], w[k(0, V), POS] = 1.0, -10 * BIG  # position 0's key scores -10000
    for head in (1, 2):  # uniform heads whose (non-zero) values are never read
        for t in range(V):
            w[v(head, t), t] = 1.0
    model.head.weight[:, OUT : OUT + V] = torch.eye(V)
    return model


USED, UNUSED = [(0, 0), (0, 1), (1, 0)], [(0, 2), (1, 1), (1, 2)]
N = 6  # the repeated sequences' half length: 12 positions of the 16


def repeated(batch: int = 3, seed: int = 0) -> torch.Tensor:
    """(batch, 2N) ids: N distinct tokens, then the same N again."""
    return repeated_random_tokens(V, N, batch, torch.Generator().manual_seed(seed), distinct=True)


def uniform_causal(batch: int, heads: int, seq: int) -> torch.Tensor:
    """(batch, heads, seq, seq) patterns: query t spreads its weight evenly over keys 0..t."""
    visible = torch.ones(seq, seq).tril()  # (T, T)
    return (visible / visible.sum(-1, keepdim=True)).expand(batch, heads, seq, seq)


def mean_of_reciprocals(first: int, last: int) -> float:
    """mean over t = first .. last of 1 / (t + 1), as an exact fraction, then a float."""
    return float(sum(Fraction(1, t + 1) for t in range(first, last + 1)) / (last - first + 1))


def test_the_hand_built_heads_score_as_designed():
    """Self head: 0-back 1, previous 0; previous-token head 1; induction head 1 on repeated
    tokens; duplicate-token head 1; uniform heads the exact fractions."""
    model, tokens = hand_built_model(), repeated()
    patterns = run_with_cache(model, tokens).patterns
    prev = previous_token_score(patterns)  # (L, H)
    assert prev[0, 1] == 1.0 and prev[0, 0] == 0.0
    assert k_back_score(patterns, 0)[0, 0] == 1.0
    assert induction_score(patterns, N)[1, 0] == 1.0
    assert duplicate_token_score(patterns, tokens)[0, 2] == 1.0
    assert prev[1, 1].item() == pytest.approx(mean_of_reciprocals(1, 2 * N - 1), rel=1e-6)
    induced = mean_of_reciprocals(N, 2 * N - 1)
    assert induction_score(patterns, N)[1, 2].item() == pytest.approx(induced, rel=1e-6)
    assert induction_score(patterns, N)[0].max() < 0.5  # layer 0 has no induction head


def test_the_hand_built_induction_head_predicts_the_second_half():
    """The cache shows the induction head writing the next token of the first copy."""
    model, tokens = hand_built_model(), repeated()
    cache = run_with_cache(model, tokens)
    written = cache.head_outputs[1][:, 0, N:, OUT : OUT + V]  # (B, N, V)
    expected = nn.functional.one_hot(tokens[:, 1 : N + 1], V).float()  # tokens t - N + 1
    assert torch.equal(written, expected)
    assert torch.equal(cache.logits[:, N:].argmax(-1), tokens[:, 1 : N + 1])
    for layer, head in UNUSED:
        assert cache.head_inputs[layer][:, head].abs().sum() > 0  # it computes something
        assert torch.equal(cache.head_outputs[layer][:, head], torch.zeros(3, 2 * N, E))


def next_tokens(tokens: torch.Tensor) -> torch.Tensor:
    """The target at t is token t + 1; the last position's is token 0 (= token N)."""
    return tokens.roll(-1, dims=1)


def test_ablating_a_used_head_changes_the_output_and_costs_accuracy():
    model, tokens = hand_built_model(), repeated()
    result = ablate_heads(model, tokens, next_tokens(tokens), [(1, 0)])
    assert result.accuracy_before == 0.5  # the second half right, the first half wrong
    assert torch.equal(result.logits_after, torch.zeros(3, 2 * N, V))  # nothing writes
    assert result.accuracy_after < 0.5 and result.loss_change > 0
    assert result.accuracy_change == result.accuracy_after - 0.5
    previous = ablate_heads(model, tokens, next_tokens(tokens), [(0, 1)])  # induction breaks
    assert not torch.equal(previous.logits_after, previous.logits_before)
    assert previous.accuracy_after < previous.accuracy_before


def test_ablation_scores_only_the_positions_a_task_scores():
    """Targets of -100 (the tasks' IGNORE) are left out: the hand-built model predicts every
    second-half token, so with the first half unscored it is right at every scored one."""
    model, tokens = hand_built_model(), repeated()
    targets = next_tokens(tokens)
    targets[:, :N] = -100  # the second half: each next token was seen N places before
    result = ablate_heads(model, tokens, targets, [(1, 0)])
    assert result.accuracy_before == 1.0
    logits, wanted = result.logits_before[:, N:], next_tokens(tokens)[:, N:]
    by_hand = -logits.log_softmax(-1).gather(-1, wanted.unsqueeze(-1)).mean()
    assert result.loss_before == pytest.approx(float(by_hand), abs=1e-6)
    with pytest.raises(ValueError, match=r"targets: expected at least one scored position"):
        ablate_heads(model, tokens, torch.full_like(targets, -100), [(1, 0)])
    targets[0, -1] = -5  # neither an id nor IGNORE
    with pytest.raises(
        ValueError, match=r"targets: expected ids in \[0, vocab_size=8\), got values from -5"
    ):
        ablate_heads(model, tokens, targets, [(1, 0)])


@pytest.mark.parametrize("mode", ["zero", "mean"])
def test_ablating_unused_heads_changes_nothing_at_all(mode):
    model, tokens = hand_built_model(), repeated()
    result = ablate_heads(model, tokens, next_tokens(tokens), UNUSED, mode=mode)
    assert torch.equal(result.logits_after, result.logits_before)
    assert result.loss_change == 0.0 and result.accuracy_change == 0.0
    for pair in USED:  # while each used head, alone, changes the logits
        changed = ablate_heads(model, tokens, next_tokens(tokens), [pair], mode=mode)
        assert not torch.equal(changed.logits_after, changed.logits_before), pair


def test_mean_ablation_writes_the_heads_mean_over_batch_and_positions():
    """The logits are linear in the induction head's output (no biases, no norm), so with
    its output replaced by its mean the logits are the mean of the unablated logits."""
    model, tokens = hand_built_model(), repeated()
    result = ablate_heads(model, tokens, next_tokens(tokens), [(1, 0)], mode="mean")
    mean = result.logits_before.mean(dim=(0, 1)).expand(3, 2 * N, V)  # (B, T, V)
    torch.testing.assert_close(result.logits_after, mean)


def test_ablation_refuses_bad_arguments_with_named_errors():
    model, tokens = hand_built_model(), repeated()
    targets = next_tokens(tokens)
    message = r"heads: expected \(layer, head\) with layer < 2 and head < 3, got \(0, 7\)"
    with pytest.raises(ValueError, match=message):
        ablate_heads(model, tokens, targets, [(0, 7)])
    with pytest.raises(ValueError, match=r"got \(0, 3\)"):  # head = num_heads
        ablate_heads(model, tokens, targets, [(0, 3)])
    with pytest.raises(ValueError, match=r"got \(2, 0\)"):
        ablate_heads(model, tokens, targets, [[2, 0]])
    with pytest.raises(ValueError, match=r"got \(0, -1\)"):
        ablate_heads(model, tokens, targets, [(0, -1)])
    with pytest.raises(ValueError, match=r"heads: expected .*, got 3"):
        ablate_heads(model, tokens, targets, [3])
    with pytest.raises(TypeError, match=r"heads: expected an iterable"):
        ablate_heads(model, tokens, targets, 3)
    with pytest.raises(ValueError, match=r"mode: expected 'zero' or 'mean', got 'one'"):
        ablate_heads(model, tokens, targets, [(0, 0)], mode="one")
    with pytest.raises(ValueError, match=r"targets: expected shape \(batch=3, seq=12\), got"):
        ablate_heads(model, tokens, targets[:, :5], [(0, 0)])
    with pytest.raises(TypeError, match=r"model: expected the model get_stage"):
        ablate_heads(nn.Linear(2, 2), tokens, targets, [(0, 0)])


# ---- head scores on patterns built directly ----


def test_scores_of_uniform_attention_are_the_exact_fractions():
    patterns = [uniform_causal(2, 3, 6)] * 2  # 2 layers, (B, H, T, T)
    assert previous_token_score(patterns).shape == (2, 3)
    assert torch.allclose(previous_token_score(patterns), torch.tensor(mean_of_reciprocals(1, 5)))
    assert torch.allclose(k_back_score(patterns, 2), torch.tensor(mean_of_reciprocals(2, 5)))
    assert torch.allclose(induction_score(patterns, 3), torch.tensor(mean_of_reciprocals(3, 5)))
    tokens = torch.tensor([[1, 2, 1, 1, 4, 5], [0, 3, 3, 6, 7, 0]])  # (B, T)
    # row 0: t=2 one copy of 3 keys, t=3 two of 4; row 1: t=2 one of 3, t=5 one of 6
    expected = (Fraction(1, 3) + Fraction(2, 4) + Fraction(1, 3) + Fraction(1, 6)) / 4
    assert torch.allclose(duplicate_token_score(patterns, tokens), torch.tensor(float(expected)))


def shifted(seq: int, back: int) -> torch.Tensor:
    """(1, 1, seq, seq): query t on key t - back (on itself while t < back)."""
    rows = torch.arange(seq)
    pattern = torch.zeros(seq, seq)
    pattern[rows, torch.where(rows >= back, rows - back, rows)] = 1.0
    return pattern[None, None]


def test_a_k_back_pattern_scores_one_at_its_offset_only():
    patterns = [torch.cat([shifted(8, 1), shifted(8, 2), shifted(8, 3)], dim=1)]  # (1, 3, 8, 8)
    assert torch.equal(k_back_score(patterns, 2), torch.tensor([[0.0, 1.0, 0.0]]))
    assert torch.equal(previous_token_score(patterns), torch.tensor([[1.0, 0.0, 0.0]]))
    assert torch.equal(induction_score(patterns, 4), torch.tensor([[0.0, 0.0, 1.0]]))


def test_duplicate_token_score_counts_earlier_copies_only():
    """A head on itself scores 0 even where its token repeats; one on the first copy, 1."""
    tokens = torch.tensor([[3, 1, 3, 1, 2]])
    on_self = torch.eye(5)[None, None]  # (1, 1, T, T)
    first_copy = torch.eye(5)[[0, 1, 0, 1, 4]][None, None]  # t -> the first s with that token
    score = duplicate_token_score([torch.cat([on_self, first_copy], dim=1)], tokens)
    assert torch.equal(score, torch.tensor([[0.0, 1.0]]))


def test_scores_refuse_bad_arguments_with_named_errors():
    patterns = [uniform_causal(2, 3, 6)]
    with pytest.raises(TypeError, match=r"patterns: expected a non-empty list .* got a tensor"):
        previous_token_score(patterns[0])
    with pytest.raises(ValueError, match=r"patterns\[1\]: expected shape \(batch=2, heads=3"):
        previous_token_score([patterns[0], uniform_causal(2, 3, 5)])
    with pytest.raises(ValueError, match=r"patterns\[0\]: expected a 4-D tensor"):
        previous_token_score([torch.ones(3, 6, 6)])
    with pytest.raises(ValueError, match=r"k: expected an int with 0 <= k < seq_len=6, got 6"):
        k_back_score(patterns, 6)
    with pytest.raises(ValueError, match=r"patterns: expected seq = 2 \* n = 8 .* got seq = 6"):
        induction_score(patterns, 4)
    with pytest.raises(ValueError, match=r"tokens: expected at least one query"):
        duplicate_token_score(patterns, torch.arange(12).reshape(2, 6))
    with pytest.raises(ValueError, match=r"tokens: expected shape \(batch=2, seq=6\), got"):
        duplicate_token_score(patterns, torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"n: expected at most vocab=4 with distinct=True, got 5"):
        repeated_random_tokens(4, 5, 1, distinct=True)


def test_repeated_random_tokens_repeat_and_follow_the_generator():
    tokens = repeated_random_tokens(50, 7, 4, torch.Generator().manual_seed(3))
    assert tokens.shape == (4, 14) and tokens.dtype == torch.long
    assert torch.equal(tokens[:, :7], tokens[:, 7:]) and int(tokens.max()) < 50
    again = repeated_random_tokens(50, 7, 4, torch.Generator().manual_seed(3))
    assert torch.equal(tokens, again)
    distinct = repeated_random_tokens(8, 8, 5, torch.Generator().manual_seed(3), distinct=True)
    assert all(len(set(row[:8].tolist())) == 8 for row in distinct)


# ---- run_with_cache through the contract, for every stage ----


def embedding_of(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """What the first layer reads, computed without hooks."""
    if hasattr(model, "gpt"):
        x = model.gpt.wte(tokens)  # (B, T, E)
        return x if model.gpt.wpe is None else model.gpt.wpe(x)
    return model.input_vectors(tokens)  # (B, T, E)


@pytest.mark.parametrize(("version", "options"), CASES, ids=CASE_IDS)
def test_run_with_cache_matches_the_contract_and_each_layer(version, options):
    """The maps are the contract's; each residual point is what the layer reads (rerunning
    the layer on it gives the next); the heads' outputs add up to the layer's attention."""
    model, tokens = build(version, options), torch.randint(0, 11, (2, 7))
    cache = run_with_cache(model, tokens)
    logits, maps = model(tokens, return_attention=True)
    assert torch.equal(cache.logits, logits)
    assert not cache.logits.requires_grad and not cache.head_outputs[0].requires_grad
    assert len(cache.patterns) == len(maps) == 2
    assert all(torch.equal(a, b) for a, b in zip(cache.patterns, maps, strict=True))
    assert len(cache.residual) == 3
    torch.testing.assert_close(cache.residual[0], embedding_of(model, tokens))
    for index, layer in enumerate(layers_of(model)):
        output, _ = layer.self_attend(cache.residual[index], causal=True, need_weights=True)
        torch.testing.assert_close(cache.residual[index + 1], output)
    parts = model_parts(model)
    final = parts.unembed(parts.final_norm(cache.residual[-1]))  # (B, T, V)
    torch.testing.assert_close(final, logits)
    heads = 1 if version == "v1" else 4
    for index, layer in enumerate(parts.layers):
        assert cache.head_inputs[index].shape == (2, heads, 7, 16 // heads)
        assert cache.head_outputs[index].shape == (2, heads, 7, 16)
        merged = cache.head_inputs[index].transpose(1, 2).flatten(2)  # (B, T, H·D)
        torch.testing.assert_close(layer.out_proj(merged), cache.attention_outputs[index])
        bias = 0.0 if layer.out_proj.bias is None else layer.out_proj.bias
        summed = cache.head_outputs[index].sum(1) + bias  # (B, T, E)
        torch.testing.assert_close(summed, cache.attention_outputs[index])
    assert (cache.mlp_outputs is None) == (version in ("v1", "v2", "v3"))


@pytest.mark.parametrize(
    ("version", "options"), [CASES[i] for i in PRE_NORM], ids=[CASE_IDS[i] for i in PRE_NORM]
)
def test_pre_norm_residual_stream_is_the_sum_of_what_the_layers_write(version, options):
    model, tokens = build(version, options), torch.randint(0, 11, (2, 7))
    cache = run_with_cache(model, tokens)
    for index in range(2):
        written = cache.attention_outputs[index] + cache.mlp_outputs[index]  # (B, T, E)
        torch.testing.assert_close(cache.residual[index + 1], cache.residual[index] + written)


def test_the_first_residual_point_carries_the_embedding_scale():
    """Without positions the first layer reads the token embedding times embedding_scale."""
    model, tokens = build("v2"), torch.randint(0, 11, (2, 7))
    model.embedding_scale = 3.0
    cache = run_with_cache(model, tokens)
    torch.testing.assert_close(cache.residual[0], 3.0 * model.embed(tokens))
    output, _ = model.layers[0].self_attend(cache.residual[0], causal=True, need_weights=True)
    torch.testing.assert_close(cache.residual[1], output)


def test_heads_without_queries_in_v1_and_v2_score_the_uniform_fraction():
    """v1 and v2 have no positions, so a previous-token head needs v3 (above); a head whose
    queries are zero attends uniformly, and the cache's patterns score the exact fraction."""
    for version in ("v1", "v2"):
        model = build(version)
        with torch.no_grad():
            for layer in model.layers:
                if version == "v1":
                    layer.w_q.weight.zero_(), layer.w_q.bias.zero_()
                else:
                    layer.in_proj_weight[:16].zero_(), layer.in_proj_bias[:16].zero_()
        patterns = run_with_cache(model, torch.randint(0, 11, (2, 7))).patterns
        expected = torch.tensor(mean_of_reciprocals(1, 6))
        assert torch.allclose(previous_token_score(patterns), expected)


# ---- hooks are removed, whatever happens ----


@pytest.mark.parametrize(("version", "options"), CASES, ids=CASE_IDS)
def test_no_hook_stays_behind(version, options):
    model, tokens = build(version, options), torch.randint(0, 11, (2, 7))
    run_with_cache(model, tokens)
    assert hook_count(model) == 0
    for mode in ("zero", "mean"):
        ablate_heads(model, tokens, tokens, [(1, 0)], mode=mode)
        assert hook_count(model) == 0
    if version in ("v5", "v7"):
        direct_logit_attribution(model, tokens, tokens)
        assert hook_count(model) == 0


def raise_on_call(module: nn.Module, call: int) -> None:
    """Make ``module``'s ``call``-th forward (1 = the next) raise RuntimeError('boom')."""
    forward, calls = module.forward, []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise RuntimeError("boom")
        return forward(*args, **kwargs)

    module.forward = failing


@pytest.mark.parametrize("version", VERSIONS)
def test_hooks_are_removed_and_modes_restored_when_the_forward_raises(version):
    model, tokens = build(version).train(), torch.randint(0, 11, (2, 7))
    raise_on_call(final_norm_of(model), 1)
    with pytest.raises(RuntimeError, match="boom"):
        run_with_cache(model, tokens)
    assert hook_count(model) == 0
    assert all(m.training for m in model.modules())
    raise_on_call(final_norm_of(model), 2)  # the ablated pass, with its hooks on, raises
    with pytest.raises(RuntimeError, match="boom"):
        ablate_heads(model, tokens, tokens, [(0, 0)], mode="mean")
    assert hook_count(model) == 0
    assert all(m.training for m in model.modules())


def test_the_callers_own_hooks_stay_and_run():
    model, tokens = build("v5"), torch.randint(0, 11, (2, 7))
    seen = []
    handle = model.gpt.ln_f.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    run_with_cache(model, tokens)
    assert seen == [(2, 7, 16)] and hook_count(model) == 1
    handle.remove()


# ---- direct logit attribution (v5, v7) ----


@torch.no_grad()
def randomised(version: str, options: dict | None = None, seed: int = 0):
    """A model whose every parameter (norm gains and biases too) is random and O(1), so each
    part of the logit is visible."""
    model = build(version, options, seed)
    generator = torch.Generator().manual_seed(seed)
    for name, parameter in model.named_parameters():
        noise = torch.randn(parameter.shape, generator=generator)
        is_gain = "norm" in name or "ln_" in name
        parameter.copy_(1 + 0.3 * noise if is_gain and name.endswith("weight") else 0.5 * noise)
    return model


DLA_CASES = [("v5", {}), ("v7", {}), CASES[-1]]  # the last: v7 at GPT-2's settings
DLA_IDS = ["v5", "v7-llama", "v7-gpt2-settings"]


@pytest.mark.parametrize(("version", "options"), DLA_CASES, ids=DLA_IDS)
def test_the_parts_add_up_to_the_actual_logit(version, options):
    model, tokens = randomised(version, options), torch.randint(0, 11, (3, 7))
    targets = torch.randint(0, 11, (3, 7))
    attribution = direct_logit_attribution(model, tokens, targets)
    assert attribution.heads.shape == (2, 4, 3, 7)
    logits = model(tokens).gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    torch.testing.assert_close(attribution.target_logits, logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(attribution.total(), logits, rtol=0, atol=1e-5)
    assert attribution.heads.abs().min() > 0 and attribution.mlps.abs().min() > 0
    assert not any(t.requires_grad for t in vars(attribution).values())  # computed without
    if options.get("bias"):
        assert attribution.constant.abs().min() > 0 and attribution.attention_biases.abs().min() > 0


@pytest.mark.parametrize(("version", "options"), DLA_CASES, ids=DLA_IDS)
def test_each_heads_attribution_equals_a_direct_computation(version, options):
    """Recomputed per head from the merged heads, its out_proj columns, the lm_head module and
    the final norm's frozen scale read off the norm's own output; a head with zero output
    columns gets exactly 0."""
    model, tokens = randomised(version, options), torch.randint(0, 11, (2, 5))
    targets = torch.randint(0, 11, (2, 5))
    gpt = model.gpt
    with torch.no_grad():
        gpt.h[1].self_attn.out_proj.weight[:, 2 * 4 : 3 * 4] = 0.0  # head (1, 2) writes nothing
    attribution = direct_logit_attribution(model, tokens, targets)
    cache = run_with_cache(model, tokens)
    final = cache.residual[-1]  # (B, T, E)
    norm = gpt.ln_f
    centred = isinstance(norm, nn.LayerNorm)
    shift = final.mean(-1, keepdim=True) if centred else 0.0
    bias = 0.0 if getattr(norm, "bias", None) is None else norm.bias
    with torch.no_grad():
        actual = norm(final) - bias  # (B, T, E) = (x - shift) * s * weight
        scale = actual.norm(dim=-1) / ((final - shift) * norm.weight).norm(dim=-1)  # (B, T)
        for layer, block in enumerate(gpt.h):
            columns = block.self_attn.out_proj.weight.unflatten(1, (4, 4))  # (E, H, D)
            for head in range(4):
                written = cache.head_inputs[layer][:, head] @ columns[:, head].T  # (B, T, E)
                if centred:
                    written = written - written.mean(-1, keepdim=True)
                normed = written * scale[..., None] * norm.weight  # (B, T, E)
                read = gpt.lm_head(normed).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                torch.testing.assert_close(attribution.heads[layer, head], read)
    assert torch.equal(attribution.heads[1, 2], torch.zeros(2, 5))


def test_attribution_refuses_models_without_a_residual_stream():
    tokens = torch.randint(0, 11, (2, 5))
    with pytest.raises(TypeError, match=r"model: expected a v5 or v7 model .* got Multi"):
        direct_logit_attribution(build("v2"), tokens, tokens)
    with pytest.raises(ValueError, match=r"targets: expected shape \(batch=2, seq=5\)"):
        direct_logit_attribution(build("v5"), tokens, tokens[:1])


# ---- layering ----


def test_a_stage_importing_inspect_is_caught(tmp_path):
    """The inspection tools sit above the stages: a stage may not import them."""
    root = tmp_path / "src"
    shutil.copytree(SRC, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(root) == []
    gpt = root / "transformer" / "v5_gpt" / "gpt.py"
    gpt.write_text(gpt.read_text() + "\n\ndef late():\n    import transformer.inspect\n")
    found = violations(root)
    assert len(found) == 1 and found[0].startswith("transformer/v5_gpt/gpt.py"), found
