"""Damaged or tampered checkpoints: a one-line CheckpointError naming the file, and nothing
changed, whatever part of the file is wrong."""

import json
import math
import struct

import pytest
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import save

from transformer.lm.checkpoint import FORMAT, CheckpointError, digest, load_checkpoint
from transformer.lm.corpus import sample_batch
from transformer.lm.training import (
    TrainConfig,
    build_optimizer,
    rng_states,
    saved_history,
    train,
    train_step,
)
from transformer.v5_gpt import GPT, GPTConfig

TINY = GPTConfig(vocab_size=32, n_positions=8, n_embd=8, n_layer=1, n_head=2)
CONFIG = TrainConfig(steps=4, batch_size=2, warmup_steps=1, eval_interval=2, eval_batches=1)
DATA = torch.arange(400) % 32


def model(seed=0) -> GPT:
    torch.manual_seed(seed)
    return GPT(TINY)


def sample(n, generator):
    return sample_batch(DATA, n, 8, generator)


@pytest.fixture
def path(tmp_path):
    """A real checkpoint after two training steps."""
    where = tmp_path / "ckpt.safetensors"
    train(model(), sample, {"train": sample}, CONFIG, torch.Generator().manual_seed(0),
          checkpoint_path=where, stop_after=2, progress=False)  # fmt: skip
    return where


def parts(path):
    """(tensors, metadata values) of a checkpoint file."""
    data = path.read_bytes()
    length = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + length])
    return load_bytes(data), json.loads(header["__metadata__"][FORMAT])


def rewrite(path, tensors, values, *, fix_digests=True):
    if fix_digests:
        values["digests"] = {name: digest(t) for name, t in sorted(tensors.items())}
    path.write_bytes(save(tensors, metadata={FORMAT: json.dumps(values)}))


def resume(path):
    """Resume into a fresh model and train to the end; returns the run's result."""
    fresh = model(1)
    return train(fresh, sample, {"train": sample}, CONFIG, torch.Generator().manual_seed(0),
                 checkpoint_path=path, resume=True, progress=False)  # fmt: skip


def refused(path, match: str) -> None:
    fresh = model(1)
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    optimizer = build_optimizer(fresh, CONFIG)
    rng = rng_states(torch.Generator(), torch.device("cpu"))
    with pytest.raises(CheckpointError, match=match) as caught:
        load_checkpoint(path, fresh, optimizer, rng_now=rng)
    message = str(caught.value)
    assert message.startswith(str(path)) and "\n" not in message
    assert all(torch.equal(before[k], v) for k, v in fresh.state_dict().items()), "changed"
    assert optimizer.state_dict()["state"] == {}, "optimizer changed"
    with pytest.raises(CheckpointError, match=match):
        resume(path)


def test_the_undamaged_checkpoint_resumes(path):
    """The fixture itself is sound, so each refusal below is the damage's."""
    result = resume(path)
    assert result.step == CONFIG.steps and len(result.history.train_loss) == CONFIG.steps


def test_one_flipped_bit_in_a_weight_is_refused(path):
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # the last tensor bytes (the file ends with tensor data)
    path.write_bytes(bytes(data))
    refused(path, "does not match its SHA-256 digest")


def test_a_truncated_file_is_refused(path):
    path.write_bytes(path.read_bytes()[:-100])
    refused(path, "expected whole tensor data")


def test_damaged_metadata_json_is_refused(path):
    data = path.read_bytes()
    at = data.index(b'step\\":') + len(b'step\\"')  # the metadata is JSON inside JSON
    path.write_bytes(data[:at] + b"{" + data[at + 1 :])  # one byte: the inner JSON breaks
    refused(path, "expected JSON metadata, got damaged JSON")


@pytest.mark.parametrize("key", ["step", "model_config", "optimizer", "digests", "history"])
def test_a_missing_metadata_key_is_refused(path, key):
    tensors, values = parts(path)
    del values[key]
    rewrite(path, tensors, values, fix_digests=key != "digests")
    refused(path, f"expected metadata keys \\['{key}'\\]")


def test_a_missing_optimizer_tensor_is_refused(path):
    tensors, values = parts(path)
    del tensors[next(k for k in tensors if k.endswith("exp_avg"))]
    rewrite(path, tensors, values)
    refused(path, "malformed")


def test_an_unknown_history_key_is_refused(path):
    tensors, values = parts(path)
    values["history"]["surprise"] = []
    rewrite(path, tensors, values)
    with pytest.raises(CheckpointError, match="expected a history with keys"):
        resume(path)
    with pytest.raises(CheckpointError):
        saved_history(path, {"train_loss": 1})


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("model/wpe.weight", "model tensor 'wpe.weight': expected shape \\(8, 8\\)"),
        ("rng/torch_cpu", "random state tensor 'torch_cpu': expected shape"),
        ("exp_avg", "optimizer state 'exp_avg' of parameter 0: expected shape \\(32, 8\\)"),
    ],
)
def test_a_wrong_shape_tensor_is_refused_before_anything_loads(path, name, match):
    tensors, values = parts(path)
    key = name if name in tensors else next(k for k in tensors if k.endswith(f"/0/{name}"))
    tensors[key] = torch.zeros(3, dtype=tensors[key].dtype)
    rewrite(path, tensors, values)
    refused(path, match)


def test_a_training_step_after_loading_works(path):
    """What the optimizer check protects: a loaded state that trains without error."""
    fresh = model(1)
    optimizer = build_optimizer(fresh, CONFIG)
    load_checkpoint(path, fresh, optimizer)
    inputs, targets = sample(2, torch.Generator().manual_seed(0))
    loss, norm = train_step(fresh, optimizer, inputs, targets, 1e-3, 1.0)
    assert math.isfinite(loss) and math.isfinite(norm) and loss < math.log(TINY.vocab_size) + 1
