"""v7's Llama checkpoint folders against Hugging Face's ``LlamaForCausalLM``, both directions,
and every damaged or unsupported folder refused with one line that names the file and key.

Everything is offline: tiny random Llamas, built here and saved to ``tmp_path``.
"""

import dataclasses
import json
import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

import transformer.io
import transformer.v7_modern.pretrained as v7_pretrained
from transformer.v5_gpt import GPT, CheckpointFolderError, GPTConfig
from transformer.v7_modern import (
    ModernConfig,
    ModernGPT,
    RotaryEmbedding,
    load_llama_checkpoint,
    save_llama_checkpoint,
)

VOCAB, WIDTH, HEADS, LAYERS, INNER = 48, 16, 4, 2, 24
SHARD_BYTES = 1500  # a few tensors per shard at these sizes
SHARD = re.compile(r"model-(\d{5})-of-(\d{5})\.safetensors")


def randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Move every parameter away from its initial value (norm gains of 1 test nothing)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model


def our_config(tied: bool = True, kv: int = 2, bias: bool = False) -> ModernConfig:
    """Every field explicit, so that the config read back compares equal."""
    return ModernConfig.llama(
        vocab_size=VOCAB,
        n_positions=16,
        n_embd=WIDTH,
        n_layer=LAYERS,
        n_head=HEADS,
        n_kv_head=kv,
        n_inner=INNER,
        layer_norm_epsilon=1e-5,
        rope_theta=500.0,
        bias=bias,
        tie_word_embeddings=tied,
    )


def ours(seed: int = 0, **switches) -> ModernGPT:
    torch.manual_seed(seed)
    return randomise(ModernGPT(our_config(**switches)), seed).eval()


def hf_llama(seed: int, tied: bool = False, kv: int = 2, bias: bool = False) -> LlamaForCausalLM:
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=WIDTH,
        intermediate_size=INNER,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=kv,
        max_position_embeddings=16,
        rms_norm_eps=1e-5,
        rope_theta=500.0,
        attention_bias=bias,
        mlp_bias=bias,
        tie_word_embeddings=tied,
    )
    torch.manual_seed(seed)
    return randomise(LlamaForCausalLM(config), seed).eval()


def tokens(seed: int, seq_len: int = 11) -> torch.Tensor:
    """Longer than n_positions=16 would be allowed too (RoPE); 11 keeps it quick."""
    return torch.randint(0, VOCAB, (3, seq_len), generator=torch.Generator().manual_seed(seed))


def same_logits(model: ModernGPT, hf: LlamaForCausalLM, seed: int) -> None:
    idx = tokens(seed)
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf(idx).logits, atol=1e-5, rtol=1e-5)


def stored_keys(folder) -> dict[str, str]:
    """Every tensor in the folder's safetensors files -> the file that holds it."""
    where = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(path, "pt") as handle:
            assert handle.metadata() == {"format": "pt"}  # from_pretrained requires it
            where |= dict.fromkeys(handle.keys(), path.name)
    return where


def check_index(folder, limit: int) -> None:
    """The index lists exactly the stored tensors, in the files that hold them, as
    transformers writes it; shards are numbered 1..N of N and none is over the limit."""
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    assert sorted(index) == ["metadata", "weight_map"]
    assert index["weight_map"] == stored_keys(folder)
    assert list(index["weight_map"]) == sorted(index["weight_map"])
    shards = sorted(set(index["weight_map"].values()))
    numbers = [SHARD.fullmatch(name).groups() for name in shards]
    assert numbers == [(f"{i:05d}", f"{len(shards):05d}") for i in range(1, len(shards) + 1)]
    tensors = {k: v for name in shards for k, v in load_file(folder / name).items()}
    assert index["metadata"] == {
        "total_parameters": sum(t.numel() for t in tensors.values()),
        "total_size": sum(t.numel() * t.element_size() for t in tensors.values()),
    }
    for name in shards:
        sizes = [t.numel() * t.element_size() for t in load_file(folder / name).values()]
        assert sum(sizes) <= limit or len(sizes) == 1, name


def files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ---- (a) what we write, Hugging Face reads ----


WRITE_CASES = {
    "single-tied-gqa": ({"tied": True, "kv": 2}, None),
    "single-untied-mha": ({"tied": False, "kv": 4}, None),
    "sharded-tied-gqa": ({"tied": True, "kv": 2}, SHARD_BYTES),
    "sharded-untied-mqa-bias": ({"tied": False, "kv": 1, "bias": True}, SHARD_BYTES),
}


@pytest.mark.parametrize("case", WRITE_CASES)
def test_hf_reads_what_we_write(tmp_path, case):
    switches, limit = WRITE_CASES[case]
    model = ours(1, **switches)
    save_llama_checkpoint(model, tmp_path, max_shard_bytes=limit)

    keys = stored_keys(tmp_path)
    assert ("lm_head.weight" in keys) == (not switches["tied"])  # as save_pretrained does
    if limit is None:
        assert files(tmp_path) == ["config.json", "model.safetensors"]
    else:
        assert "model.safetensors" not in files(tmp_path) and len(set(keys.values())) > 2
        check_index(tmp_path, limit)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == "float32"

    hf, info = LlamaForCausalLM.from_pretrained(tmp_path, output_loading_info=True)
    assert {k: v for k, v in info.items() if v} == {}, info  # nothing missing, extra or resized
    assert hf.config.num_key_value_heads == switches["kv"]
    tied = hf.lm_head.weight.data_ptr() == hf.model.embed_tokens.weight.data_ptr()
    assert tied == switches["tied"]
    same_logits(model, hf.eval(), 1)


# ---- (b) what Hugging Face writes, we read ----


READ_CASES = {
    "single-untied-gqa": ({"tied": False, "kv": 2}, "5GB"),
    "sharded-tied-gqa": ({"tied": True, "kv": 2}, "2KB"),
    "sharded-untied-mqa-bias": ({"tied": False, "kv": 1, "bias": True}, "2KB"),
}


@pytest.mark.parametrize("case", READ_CASES)
def test_we_read_what_hf_writes(tmp_path, case):
    switches, size = READ_CASES[case]
    hf = hf_llama(2, **switches)
    hf.save_pretrained(tmp_path, max_shard_size=size)
    sharded = (tmp_path / "model.safetensors.index.json").is_file()
    assert sharded == (size == "2KB")

    model = load_llama_checkpoint(tmp_path).eval()
    assert model.config == our_config(**switches)
    assert (model.lm_head.weight is model.wte.weight) == switches["tied"]
    same_logits(model, hf, 2)


# ---- (c) ours -> ours ----


@pytest.mark.parametrize("limit", [None, SHARD_BYTES])
@pytest.mark.parametrize("tied", [True, False])
def test_round_trip_is_exact(tmp_path, tied, limit):
    model = ours(3, tied=tied, kv=2, bias=not tied)
    save_llama_checkpoint(model, tmp_path, max_shard_bytes=limit)
    again = load_llama_checkpoint(tmp_path)
    assert again.config == model.config
    assert (again.lm_head.weight is again.wte.weight) == tied
    assert again.state_dict().keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    assert torch.equal(again.eval()(tokens(3)), model(tokens(3)))


def test_bfloat16_stays_bfloat16(tmp_path):
    model = ours(4).to(torch.bfloat16)
    save_llama_checkpoint(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["dtype"] == config["torch_dtype"] == "bfloat16"
    assert {t.dtype for t in load_file(tmp_path / "model.safetensors").values()} == {torch.bfloat16}
    again = load_llama_checkpoint(tmp_path)
    assert {p.dtype for p in again.parameters()} == {torch.bfloat16}
    assert torch.get_default_dtype() == torch.float32  # restored after loading
    rotary, positions = again.h[0].self_attn.rotary, torch.arange(5)
    exact = RotaryEmbedding(rotary.head_dim, rotary.theta)(positions, torch.float32)
    assert all(
        torch.equal(a, b) for a, b in zip(rotary(positions, torch.float32), exact, strict=True)
    )
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    hf = LlamaForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert torch.equal(hf.model.embed_tokens.weight, model.wte.weight)


def test_a_tied_checkpoint_may_carry_lm_head_but_only_the_embedding(tmp_path):
    save_llama_checkpoint(ours(5, tied=True), tmp_path)
    weights = tmp_path / "model.safetensors"
    tensors = load_file(weights)
    save_file(tensors | {"lm_head.weight": tensors["model.embed_tokens.weight"].clone()},
              weights, metadata={"format": "pt"})  # fmt: skip
    model = load_llama_checkpoint(tmp_path)
    assert model.lm_head.weight is model.wte.weight
    save_file(tensors | {"lm_head.weight": torch.zeros(VOCAB, WIDTH)}, weights)
    with pytest.raises(CheckpointFolderError, match="lm_head.weight: expected it equal to"):
        load_llama_checkpoint(tmp_path)


def test_saving_again_replaces_the_old_layout(tmp_path):
    """Sharded over single and single over sharded: no stale file is left to be read."""
    first, second, third = ours(6), ours(7), ours(8)
    save_llama_checkpoint(first, tmp_path, max_shard_bytes=SHARD_BYTES)
    (tmp_path / "tokenizer.json").write_text("{}")  # not ours: stays
    save_llama_checkpoint(second, tmp_path)
    assert files(tmp_path) == ["config.json", "model.safetensors", "tokenizer.json"]
    assert torch.equal(load_llama_checkpoint(tmp_path).wte.weight, second.wte.weight)
    save_llama_checkpoint(third, tmp_path, max_shard_bytes=4 * SHARD_BYTES)
    assert "model.safetensors" not in files(tmp_path) and "tokenizer.json" in files(tmp_path)
    check_index(tmp_path, 4 * SHARD_BYTES)
    assert torch.equal(load_llama_checkpoint(tmp_path).wte.weight, third.wte.weight)


@pytest.mark.parametrize("fail_at", [1, 2])
@pytest.mark.parametrize("limit", [None, SHARD_BYTES])
def test_an_interrupted_save_leaves_a_folder_that_refuses_to_load(
    tmp_path, monkeypatch, limit, fail_at
):
    """Never the old weights under the new config, nor a mix of old and new shards."""
    save_llama_checkpoint(ours(9, kv=4), tmp_path, max_shard_bytes=limit)
    real, calls = transformer.io.write_bytes, []

    def write_bytes(path, data):
        calls.append(path.name)
        if len(calls) == fail_at:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(transformer.io, "write_bytes", write_bytes)  # write_json's
    monkeypatch.setattr(v7_pretrained, "write_bytes", write_bytes)
    with pytest.raises(OSError, match="disk full"):
        save_llama_checkpoint(ours(10, kv=2), tmp_path, max_shard_bytes=limit)
    monkeypatch.undo()
    with pytest.raises(FileNotFoundError, match="expected model.safetensors"):
        load_llama_checkpoint(tmp_path)
    assert not [name for name in files(tmp_path) if name.endswith(".tmp")]


# ---- (d) damaged or unsupported folders ----


def edit_config(folder, **changes):
    path = folder / "config.json"
    path.write_text(json.dumps(json.loads(path.read_text()) | changes))


def edit_weights(folder, change):
    path = folder / "model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def edit_index(folder, index):
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))


def truncate(path):
    path.write_bytes(path.read_bytes()[:-50])


def first_shard(folder):
    return sorted(folder.glob("model-*.safetensors"))[0]


K_PROJ = "model.layers.0.self_attn.k_proj.weight"
UP_PROJ = "model.layers.1.mlp.up_proj.weight"
# name -> (saved sharded?, untied?, damage, error, match, the file the message names)
DAMAGE = {
    "missing config.json": (
        False, False, lambda f: (f / "config.json").unlink(), FileNotFoundError,
        r"expected a Llama checkpoint folder with config.json .*: no config.json there", "",
    ),
    "bad json": (
        False, False, lambda f: (f / "config.json").write_text("{not json"),
        CheckpointFolderError, "config.json: expected a JSON object, got damaged JSON",
        "config.json",
    ),
    "json that is no object": (
        False, False, lambda f: (f / "config.json").write_text("[1, 2]"),
        CheckpointFolderError, "config.json: expected a JSON object, got list", "config.json",
    ),
    "linear rope_scaling": (
        False, False,
        lambda f: edit_config(f, rope_scaling={"rope_type": "linear", "factor": 2.0}),
        CheckpointFolderError, r"config.json: rope_scaling: expected plain RoPE .*'linear' kind",
        "config.json",
    ),
    "linear rope_parameters": (
        False, False,
        lambda f: edit_config(f, rope_parameters={"rope_type": "linear", "factor": 2.0}),
        CheckpointFolderError,
        r"config.json: rope_parameters: expected plain RoPE .*'linear' kind",
        "config.json",
    ),
    "rope_scaling no object": (
        False, False, lambda f: edit_config(f, rope_scaling="linear"), CheckpointFolderError,
        "config.json: rope_scaling: expected an object or null, got 'linear'", "config.json",
    ),
    "attention_bias without mlp_bias": (
        False, False, lambda f: edit_config(f, attention_bias=True, mlp_bias=False),
        CheckpointFolderError, "config.json: attention_bias: expected it equal to mlp_bias",
        "config.json",
    ),
    "another model_type": (
        False, False, lambda f: edit_config(f, model_type="mistral"), CheckpointFolderError,
        "config.json: model_type: expected 'llama', got 'mistral'", "config.json",
    ),
    "heads that do not divide": (
        False, False, lambda f: edit_config(f, num_key_value_heads=3, head_dim=None),
        CheckpointFolderError, "config.json: n_head.*n_kv_head", "config.json",
    ),
    "a missing tensor": (
        False, False, lambda f: edit_weights(f, lambda t: t.pop(UP_PROJ)),
        CheckpointFolderError, f"expected a tensor named '{UP_PROJ}', found none", "",
    ),
    "untied without lm_head": (
        False, True, lambda f: edit_weights(f, lambda t: t.pop("lm_head.weight")),
        CheckpointFolderError, "expected a tensor named 'lm_head.weight', found none", "",
    ),
    "an extra tensor": (
        False, False, lambda f: edit_weights(f, lambda t: t.update(extra=torch.zeros(2))),
        CheckpointFolderError, r"got extra keys \['extra'\]", "",
    ),
    "a wrong shape": (
        False, False, lambda f: edit_weights(f, lambda t: t.update({K_PROJ: torch.zeros(8, 15)})),
        CheckpointFolderError, f"{K_PROJ}: expected shape \\(8, 16\\) .*, got \\(8, 15\\)", "",
    ),
    "integer weights": (
        False, False,
        lambda f: edit_weights(f, lambda t: t.update({UP_PROJ: t[UP_PROJ].long()})),
        CheckpointFolderError, f"{UP_PROJ}: expected a floating-point weight tensor", "",
    ),
    "a truncated file": (
        False, False, lambda f: truncate(f / "model.safetensors"), CheckpointFolderError,
        "model.safetensors: expected a whole safetensors file", "model.safetensors",
    ),
    "a pickle": (
        False, False, lambda f: torch.save({"x": torch.zeros(1)}, f / "model.safetensors"),
        CheckpointFolderError, "model.safetensors: expected a whole safetensors file",
        "model.safetensors",
    ),
    "no weights": (
        False, False, lambda f: (f / "model.safetensors").unlink(), FileNotFoundError,
        r"expected model.safetensors \(or model.safetensors.index.json\)", "",
    ),
    "a truncated shard": (
        True, False, lambda f: truncate(first_shard(f)), CheckpointFolderError,
        "model-00001-of-.*: expected a whole safetensors file", "model-00001-of-",
    ),
    "an index without weight_map": (
        True, False, lambda f: edit_index(f, {"metadata": {"total_size": 1}}),
        CheckpointFolderError, "index.json: expected a 'weight_map' of tensor -> shard file",
        "model.safetensors.index.json",
    ),
    "a shard outside the folder": (
        True, False, lambda f: edit_index(f, {"weight_map": {K_PROJ: "../elsewhere.safetensors"}}),
        CheckpointFolderError, "index.json: expected shard file names inside the folder",
        "model.safetensors.index.json",
    ),
    "a shard path with a folder": (
        True, False, lambda f: edit_index(f, {"weight_map": {K_PROJ: "sub/x.safetensors"}}),
        CheckpointFolderError, "index.json: expected shard file names inside the folder",
        "model.safetensors.index.json",
    ),
    "a shard that is missing": (
        True, False, lambda f: first_shard(f).unlink(), CheckpointFolderError,
        "model-00001-of-.*: expected a whole safetensors file", "model-00001-of-",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_or_unsupported_folder_is_refused_in_one_line(tmp_path, case):
    sharded, untied, damage, error, match, named = DAMAGE[case]
    folder = tmp_path / "ckpt"
    limit = SHARD_BYTES if sharded else None
    save_llama_checkpoint(ours(11, tied=not untied), folder, max_shard_bytes=limit)
    load_llama_checkpoint(folder)  # sound before the damage
    damage(folder)
    with pytest.raises(error, match=match) as caught:
        load_llama_checkpoint(folder)
    message = str(caught.value)
    assert "\n" not in message
    assert str(folder / named) in message


# ---- (e) saving what is not a Llama ----


def snapshot(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


GPT2_SHAPED = ModernConfig(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2)
REFUSED = {
    "gpt-2 shaped": (
        lambda: ModernGPT(GPT2_SHAPED),
        {}, ValueError, "positions: expected 'rope' for a Llama model, got 'learned'",
    ),
    "layernorm": (
        lambda: ModernGPT(dataclasses.replace(our_config(), norm="layernorm")),
        {}, ValueError, "norm: expected 'rmsnorm' for a Llama model, got 'layernorm'",
    ),
    "embedding dropout": (
        lambda: ModernGPT(dataclasses.replace(our_config(), embd_pdrop=0.1)),
        {}, ValueError, "embd_pdrop/resid_pdrop: expected 0 for a Llama config",
    ),
    "a v5 GPT": (
        lambda: GPT(GPTConfig(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2)),
        {}, TypeError, "model: expected a ModernGPT, got GPT",
    ),
    "shard size 0": (
        lambda: ours(12), {"max_shard_bytes": 0}, ValueError, "max_shard_bytes: expected",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", REFUSED)
def test_saving_what_is_not_a_llama_writes_nothing(tmp_path, case):
    build, options, error, match = REFUSED[case]
    fresh = tmp_path / "new"
    with pytest.raises(error, match=match):
        save_llama_checkpoint(build(), fresh, **options)
    assert not fresh.exists()

    for limit in (None, SHARD_BYTES):  # an earlier checkpoint in the folder stays as it was
        kept = tmp_path / f"kept-{limit}"
        save_llama_checkpoint(ours(13), kept, max_shard_bytes=limit)
        before = snapshot(kept)
        with pytest.raises(error, match=match):
            save_llama_checkpoint(build(), kept, **options)
        assert snapshot(kept) == before
