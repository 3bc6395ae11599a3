"""Inputs an outside audit found that gave silent wrong results, crashes or nameless errors.

Each test fails on the code before its fix; each error names the argument, what was
expected and what came.
"""

import json

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from transformer import NEXT_TOKEN, ModelConfig, get_stage, list_stages
from transformer.lm import TrainConfig, TrainingDiverged, learning_rate_at, train, unigram_baseline
from transformer.v1_basic_attention import (
    MultiHeadAttention,
    attention,
    causal_mask,
    merge_heads,
    scaled_scores,
    split_heads,
)
from transformer.v3_positional import LearnedPositionalEmbedding, SinusoidalPositionalEncoding
from transformer.v4_block import TransformerBlock, TransformerEncoder
from transformer.v5_gpt import (
    GPT,
    CheckpointFolderError,
    GPTConfig,
    from_hf_state_dict,
    load_gpt2_checkpoint,
    next_token,
    save_gpt2_checkpoint,
)

TINY = GPTConfig(vocab_size=16, n_positions=8, n_embd=8, n_layer=1, n_head=2)


@pytest.mark.parametrize("module", [SinusoidalPositionalEncoding, LearnedPositionalEmbedding])
def test_positions_refuse_integer_inputs(module):
    with pytest.raises(
        TypeError, match="x: expected a floating-point tensor, got dtype torch.int64"
    ):
        module(8, 4)(torch.zeros(1, 3, 4, dtype=torch.long))


@pytest.mark.parametrize("eps", [-1.0, 0.0, "1e-5", True])
def test_layer_norm_eps_is_checked_at_construction(eps):
    with pytest.raises(ValueError, match="layer_norm_eps: expected a number"):
        TransformerBlock(8, 2, 16, layer_norm_eps=eps)


def test_sampling_refuses_a_negative_temperature_and_treats_a_tiny_one_as_greedy():
    logits = torch.tensor([[0.0, 3.0, 1.0]])  # (1, V)
    with pytest.raises(ValueError, match="temperature: expected a finite float >= 0"):
        next_token(logits, temperature=-1.0)
    generator = torch.Generator().manual_seed(0)
    assert next_token(logits, temperature=1e-45, generator=generator).item() == 1  # argmax
    assert next_token(logits, temperature=0).item() == 1


def test_the_learning_rate_schedule_refuses_a_negative_step():
    with pytest.raises(ValueError, match="step: expected an integer >= 0, got -5"):
        learning_rate_at(-5, TrainConfig())


def test_the_unigram_baseline_refuses_empty_data_and_ids_beyond_the_vocabulary():
    with pytest.raises(ValueError, match="val: expected at least one token"):
        unigram_baseline(torch.tensor([1, 2]), torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match=r"train: expected ids in \[0, vocab_size=256\), got"):
        unigram_baseline(torch.tensor([1, 300]), torch.tensor([1]))


def test_a_nan_loss_stops_training_and_names_the_step():
    torch.manual_seed(0)
    gpt = GPT(TINY)
    with torch.no_grad():
        gpt.wte.weight[3] = float("nan")  # any sequence holding token 3 has a NaN loss

    def sample(n, generator):
        tokens = torch.full((n, 8), 3)
        return tokens, tokens

    config = TrainConfig(steps=5, batch_size=2, warmup_steps=0, eval_interval=5, eval_batches=1)
    with pytest.raises(
        TrainingDiverged, match=r"loss: expected a finite training loss, got nan at step 1"
    ):
        train(gpt, sample, {}, config, torch.Generator(), progress=False)


def test_v1_attention_in_half_precision_stays_finite_like_sdpa():
    torch.manual_seed(0)
    q, k, v = (300 * torch.randn(1, 4, 64) for _ in range(3))  # q·k/√d passes float16's max
    for dtype in (torch.float16, torch.bfloat16):
        ours, weights = attention(q.to(dtype), k.to(dtype), v.to(dtype))
        reference = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype))
        assert ours.dtype == weights.dtype == dtype
        assert torch.isfinite(ours).all() and torch.isfinite(weights).all()
        scale = reference.float().abs().max()
        torch.testing.assert_close(
            ours.float() / scale, reference.float() / scale, atol=2e-2, rtol=0
        )


@pytest.mark.parametrize("version", [stage.version for stage in list_stages(NEXT_TOKEN)])
def test_a_batch_of_no_sequences_is_refused_by_name(version):
    model = get_stage(version).build_model(ModelConfig(vocab_size=5))
    with pytest.raises(
        ValueError, match=r"tokens: expected at least one sequence .* got shape \(0, 4\)"
    ):
        model(torch.zeros(0, 4, dtype=torch.long))


def test_gpt_forward_and_generate_refuse_an_empty_batch():
    gpt = GPT(TINY)
    with pytest.raises(ValueError, match=r"idx: expected at least one sequence"):
        gpt(torch.zeros(0, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"idx: expected at least one sequence"):
        gpt.generate(torch.zeros(0, 3, dtype=torch.long), 2)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: MultiHeadAttention(8, 2)(*[torch.zeros(1, 3, 8, dtype=torch.float64)] * 3),
         TypeError, "query: expected dtype torch.float32 (the module's parameter dtype)"),
        (lambda: TransformerBlock(8, 2, 16, norm_first=True)(torch.zeros(3, 1, 8).double()),
         TypeError, "src: expected dtype torch.float32 (the block's parameter dtype)"),
        (lambda: split_heads(torch.zeros(2, 3, 7), 2), ValueError,
         "x's last dimension: expected a multiple of num_heads=2, got 7"),
        (lambda: split_heads(torch.zeros(3, 8), 2), ValueError, "x: expected a 3-D tensor"),
        (lambda: merge_heads(torch.zeros(2, 3, 8)), ValueError, "x: expected a 4-D tensor"),
        (lambda: scaled_scores(torch.zeros(3), torch.zeros(3, 3)), ValueError,
         "query: expected at least a 2-D tensor"),
        (lambda: scaled_scores(torch.zeros(2, 4), torch.zeros(2, 5)), ValueError,
         "key: expected d_k, as in query = 4"),
        (lambda: causal_mask(-1), ValueError, "seq_len: expected a positive integer, got -1"),
        (lambda: TransformerEncoder(TransformerBlock(8, 2, 16), 2, norm=5), TypeError,
         "norm: expected None or an nn.Module such as nn.LayerNorm, got 5"),
        (lambda: from_hf_state_dict({"n_embd": 8}, {}), TypeError,
         "config: expected a GPTConfig, got dict"),
        (lambda: from_hf_state_dict(TINY, {"wte.weight": torch.zeros(16, 8).long()}), TypeError,
         "wte.weight: expected a floating-point weight tensor, got torch.int64"),
    ],
)  # fmt: skip
def test_errors_name_the_argument(call, error, message):
    with pytest.raises(error) as caught:
        call()
    assert message in str(caught.value)


def test_the_stack_accepts_the_pytorch_arguments_it_has_no_use_for():
    """enable_nested_tensor and mask_check are accepted and change nothing here."""
    block, x = TransformerBlock(8, 2, 16).eval(), torch.randn(3, 2, 8)
    plain = TransformerEncoder(block, 2)
    flagged = TransformerEncoder(block, 2, enable_nested_tensor=False, mask_check=False)
    assert torch.equal(plain(x), flagged(x))


# ---- GPT-2 checkpoint folders ----


SAVED = 0  # the seed of the GPT the folder fixture saves


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(SAVED)
    save_gpt2_checkpoint(GPT(TINY), tmp_path)
    return tmp_path


def refused(folder, match: str, name: str):
    with pytest.raises(CheckpointFolderError, match=match) as caught:
        load_gpt2_checkpoint(folder)
    assert str(folder / name) in str(caught.value) or str(folder) in str(caught.value)


def test_a_truncated_weights_file_is_named(folder):
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-50])
    refused(folder, "model.safetensors: expected a whole safetensors file", "model.safetensors")


def test_a_pickled_weights_file_is_named_and_never_unpickled(folder, monkeypatch):
    weights = folder / "model.safetensors"
    torch.save({"x": torch.zeros(1)}, weights)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    refused(folder, "model.safetensors: expected a whole safetensors file", "model.safetensors")


def test_a_bad_config_is_named(folder):
    (folder / "config.json").write_text("{not json")
    refused(folder, "config.json: expected a JSON object, got damaged JSON", "config.json")
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    refused(folder, "config.json: model_type: expected 'gpt2'", "config.json")


def sharded(folder, weight_map):
    (folder / "model.safetensors").unlink()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))


def test_an_index_without_a_weight_map_is_named(folder):
    sharded(folder, {})
    refused(folder, "index.json: expected a 'weight_map'", "model.safetensors.index.json")


def test_shards_outside_the_folder_are_refused(folder, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "x.safetensors"
    save_file({"transformer.wte.weight": torch.zeros(16, 8)}, outside)
    sharded(folder, {"transformer.wte.weight": f"../{outside.parent.name}/x.safetensors"})
    refused(folder, "expected shard file names inside the folder", "model.safetensors.index.json")


def test_integer_weights_are_named(folder):
    weights = folder / "model.safetensors"
    from safetensors.torch import load_file

    tensors = load_file(weights)
    tensors["transformer.wte.weight"] = tensors["transformer.wte.weight"].long()
    save_file(tensors, weights)
    refused(folder, "transformer.wte.weight: expected a floating-point weight tensor", "")


def test_the_loader_still_loads_a_sound_folder(folder):
    torch.manual_seed(SAVED)
    saved, tokens = GPT(TINY).eval(), torch.tensor([[1, 2, 3]])
    assert torch.equal(load_gpt2_checkpoint(folder).eval()(tokens), saved(tokens))


# ---- --out: protected, locked, proven writable before any work ----


def lm_main(*flags):
    from transformer.experiments import language_model

    return language_model.main(["--quick", "--steps", "2", *flags])


def test_the_language_model_refuses_to_start_over_a_checkpoint(tmp_path, capsys):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"a finished run")
    with pytest.raises(SystemExit) as caught:
        lm_main("--out", str(tmp_path))
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pass --resume to continue that run or --overwrite" in err
    assert (tmp_path / "checkpoint.safetensors").read_bytes() == b"a finished run"
    with pytest.raises(SystemExit):
        lm_main("--out", str(tmp_path), "--resume", "--overwrite")
    assert "expected either --resume or --overwrite, got both" in capsys.readouterr().err


def test_a_second_run_on_a_locked_out_is_refused(tmp_path, capsys):
    import argparse

    from transformer.cli import RunLock

    lock = RunLock(tmp_path, argparse.ArgumentParser())
    try:
        with pytest.raises(SystemExit) as caught:
            lm_main("--out", str(tmp_path))
        assert caught.value.code == 2 and "is locked by another run" in capsys.readouterr().err
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]  # nothing else written
    finally:
        lock.release()
    assert not (tmp_path / ".lock").exists()


def test_an_out_that_cannot_be_written_fails_before_any_work(tmp_path, capsys, monkeypatch):
    from transformer.experiments import cli as task_cli

    def read_only(self, *args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(type(tmp_path), "write_bytes", read_only)
    monkeypatch.setattr(task_cli, "run_stage", lambda *a, **k: pytest.fail("work was done"))
    with pytest.raises(SystemExit) as caught:
        task_cli.main("pattern", ["--quick", "--out", str(tmp_path / "o")])
    assert caught.value.code == 2
    assert "cannot be written (Read-only file system)" in capsys.readouterr().err


def test_a_dangling_symlink_out_is_refused(tmp_path, capsys):
    from transformer.experiments import cli as task_cli

    (tmp_path / "link").symlink_to(tmp_path / "gone")
    with pytest.raises(SystemExit) as caught:
        task_cli.main("pattern", ["--quick", "--out", str(tmp_path / "link")])
    assert caught.value.code == 2 and "is a dangling symlink" in capsys.readouterr().err


# ---- compare.py on fabricated results ----


def fabricated(root, experiment, version, accuracy, seed=0, unseen_pairs=0.0):
    path = root / experiment / version / f"seed{seed}" / "results.json"
    path.parent.mkdir(parents=True)
    trained = {"accuracy": accuracy, "chance": 0.1, "seen_token_guess": 0.2, "heldout_loss": 1.0,
               "final_train_loss": 0.5, "best_head_attention_mass": 0.5,
               "unseen_pairs": {"accuracy": unseen_pairs}}  # fmt: skip
    run = {"trained": trained, "seed": seed, "training": {"steps": 7}, "device": "cpu",
           "experiment": experiment, "version": version}  # fmt: skip
    path.write_text(json.dumps(run))
    return path


def test_compare_builds_the_table_from_results_files(tmp_path, capsys):
    from transformer.experiments import compare

    fabricated(tmp_path, "pattern", "v1", 0.25)
    fabricated(tmp_path, "pattern", "v3", 0.875)
    fabricated(tmp_path, "sequential", "v3", 1.0)
    assert compare.main(["--results", str(tmp_path)]) == 0
    table = (tmp_path / "compare" / "comparison.md").read_text().splitlines()
    assert table[0].startswith("One or two seeds: too few")
    assert table[4] == "| stage | pattern | sequential |"
    assert table[6] == "| v1 | 25.0% | — |" and table[7] == "| v3 | 87.5% | 100.0% |"
    summary = json.loads((tmp_path / "compare" / "comparison.json").read_text())
    assert summary["pattern"]["v3"]["accuracy"]["mean"] == 0.875
    assert summary["pattern"]["v3"]["steps"] == 7


def test_compare_reports_the_spread_over_seeds(tmp_path, capsys):
    from transformer.experiments import compare

    for seed, (accuracy, pairs) in enumerate([(0.5, 0.0), (0.7, 0.25), (0.9, 0.5)]):
        fabricated(tmp_path, "fibonacci", "v2", accuracy, seed, unseen_pairs=pairs)
    fabricated(tmp_path, "fibonacci", "v4", 0.75)  # one seed only: it says so
    assert compare.main(["--results", str(tmp_path)]) == 0
    table = (tmp_path / "compare" / "comparison.md").read_text().splitlines()
    assert table[0] == ("Held-out accuracy over seeds 0, 1, 2: mean ± sample standard "
                        "deviation [min, max].")  # fmt: skip
    assert table[2] == "| stage | fibonacci, unseen sequences | fibonacci, unseen pairs |"
    assert table[4] == "| v2 | 70.0 ± 20.0% [50.0, 90.0] | 25.0 ± 25.0% [0.0, 50.0] |"
    assert table[5] == "| v4 | 75.0% (1 seed) | 0.0% (1 seed) |"
    v2 = json.loads((tmp_path / "compare" / "comparison.json").read_text())["fibonacci"]["v2"]
    assert v2["seeds"] == [0, 1, 2] and v2["accuracy_per_seed"] == [0.5, 0.7, 0.9]
    assert v2["unseen_pairs_accuracy"] == {"mean": 0.25, "std": 0.25, "min": 0.0, "max": 0.5}


def test_compare_names_a_results_file_in_another_seeds_folder(tmp_path, capsys):
    from transformer.experiments import compare

    path = fabricated(tmp_path, "pattern", "v2", 0.5, seed=1)
    moved = path.parent.parent / "seed4"
    path.parent.rename(moved)
    with pytest.raises(SystemExit) as caught:
        compare.main(["--results", str(tmp_path)])
    assert caught.value.code == 2
    assert capsys.readouterr().err.endswith(f"{moved / 'results.json'}: expected seed 4, got 1\n")


def test_compare_names_a_truncated_results_file(tmp_path, capsys):
    from transformer.experiments import compare

    path = fabricated(tmp_path, "pattern", "v2", 0.5)
    path.write_text(path.read_text()[:20])
    with pytest.raises(SystemExit) as caught:
        compare.main(["--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and err.count("\n") == 1
    assert f"--results: {path}: expected a results file, got damaged JSON" in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--steps", "0"], "argument --steps: expected a positive integer, got 0"),
        (["--device", "tpu"], "--device: expected auto, cpu or cuda, got 'tpu'"),
        (["--seed", "-1"], "argument --seed: expected a seed in [0, 2**32), got -1"),
    ],
)
def test_compare_checks_its_flags_with_its_own_name(tmp_path, capsys, flags, message):
    from transformer.experiments import compare

    with pytest.raises(SystemExit) as caught:
        compare.main([*flags, "--results", str(tmp_path)])
    assert caught.value.code == 2 and capsys.readouterr().err == f"compare.py: error: {message}\n"


@pytest.mark.parametrize(("steps", "warmup"), [(2, 0), (5, 0), (30, 3), (99, 9), (101, 100)])
def test_a_short_run_scales_its_warmup(steps, warmup):
    from transformer.experiments import language_model

    args = language_model.build_parser().parse_args(["--steps", str(steps)])
    args.options = {}
    assert language_model.configs(args)[1].warmup_steps == warmup  # default warmup: 100


def test_resume_from_a_tampered_checkpoint_exits_2_and_changes_nothing(tmp_path, capsys):
    import os

    old = os.umask(0o022)
    try:
        assert lm_main("--out", str(tmp_path)) == 0
    finally:
        os.umask(old)
    for name in ("checkpoint.safetensors", "results.json", "loss_curves.png"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name
    results = (tmp_path / "results.json").read_bytes()
    checkpoint = tmp_path / "checkpoint.safetensors"
    data = bytearray(checkpoint.read_bytes())
    data[-5] ^= 0x10  # one bit of one weight
    checkpoint.write_bytes(bytes(data))
    capsys.readouterr()
    with pytest.raises(SystemExit) as caught:  # refused while the flags are read
        lm_main("--out", str(tmp_path), "--resume")
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not match its SHA-256 digest" in err
    assert (tmp_path / "results.json").read_bytes() == results
    assert checkpoint.read_bytes() == bytes(data)


def test_a_block_larger_than_the_validation_split_is_refused_before_any_work(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        lm_main("--out", str(tmp_path / "o"), "--block-size", "100000")
    assert caught.value.code == 2
    assert "--block-size: expected at most" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
