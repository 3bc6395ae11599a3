"""The ablation of v7's switches: what it measures, its bad flags, and a quick run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transformer import ModelConfig, get_stage
from transformer.experiments import modern_ablation as ablation
from transformer.experiments import modern_cli
from transformer.experiments.lm_report import full_loss
from transformer.experiments.runner import spread

ROOT = Path(__file__).resolve().parents[2]
GPT2 = {"positions": "learned", "norm": "layernorm", "mlp": "gelu", "bias": True}


def test_each_single_switch_variant_differs_from_gpt2_settings_in_one_setting():
    v7 = get_stage("v7")
    rows = {v.name: v for v in ablation.variants(4)}
    assert list(rows)[:6] == ["v5", "+rope", "+rmsnorm", "+swiglu", "+gqa", "all four"]
    base = v7.architecture(ModelConfig(vocab_size=9, num_heads=4, options=GPT2 | {
        "num_kv_heads": 4}))  # fmt: skip
    for name, changed in (("+rope", "positions"), ("+rmsnorm", "norm"), ("+swiglu", "mlp"),
                          ("+gqa", "num_kv_heads")):  # fmt: skip
        arch = v7.architecture(ablation.model_config(rows[name], {"num_heads": 4}, 8))
        differing = {k for k in base if base[k] != arch[k]} - {"max_len", "vocab_size"}
        assert differing - {"dropout"} == {changed}, name
    every = v7.architecture(ablation.model_config(rows["all four"], {"num_heads": 4}, 8))
    assert (every["positions"], every["norm"], every["mlp"], every["num_kv_heads"]) == (
        "rope", "rmsnorm", "swiglu", 2)  # fmt: skip
    assert every["bias"] is True and rows["v7"].options == {"num_kv_heads": 2}


def test_kv_bytes_per_token_counts_keys_and_values_of_every_kv_head():
    # d_model 64, 4 heads of 16, 2 layers: MHA keeps 2·2·4·16 numbers, GQA (2 kv heads) half
    arch = {"d_model": 64, "num_heads": 4, "num_layers": 2}
    assert ablation.kv_bytes_per_token(arch) == 2 * 2 * 4 * 16 * 4 == 1024
    assert ablation.kv_bytes_per_token(arch | {"num_kv_heads": 2}) == 512
    assert ablation.kv_bytes_per_token(arch | {"num_kv_heads": 1}) == 256


def model(options, block=8):
    torch.manual_seed(0)
    config = ModelConfig(vocab_size=256, d_model=16, num_heads=2, max_len=block, options=options)
    return get_stage("v7").build_model(config).eval()


def test_loss_by_position_averages_to_the_full_loss():
    data = torch.randint(0, 256, (200,), generator=torch.Generator().manual_seed(1))
    rope = model({})
    per_position = ablation.loss_by_position(rope, data, 8, batch=5)
    assert per_position.shape == (8,)
    assert per_position.mean().item() == pytest.approx(full_loss(rope, data, 8, 5), rel=1e-5)


def test_learned_positions_say_they_cannot_run_past_the_context_and_rope_runs():
    data = torch.randint(0, 256, (300,), generator=torch.Generator().manual_seed(2))
    learned = ablation.length_generalisation(model({"positions": "learned"}), data, 8, 4)
    assert learned["runs_past_context"] is False
    assert "n_positions=8" in learned["reason"] and "RoPE" in learned["reason"]
    rope = ablation.length_generalisation(model({}), data, 8, 4)
    assert rope["runs_past_context"] is True
    assert sorted(rope["bits_per_char"]) == ["0_T", "2T_4T", "T_2T"]
    assert len(rope["per_position"]) == 32


def test_spread_and_separation_from_v5():
    assert spread([1.0, 2.0, 3.0]) == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}
    assert spread([4.0])["std"] == 0.0
    run = {"length": {"runs_past_context": False, "reason": "r"}}
    variants = {
        "v5": {"runs": [run | {"val_bits_per_char": b} for b in (2.0, 2.2)]},
        "apart": {"runs": [run | {"val_bits_per_char": b} for b in (1.7, 1.9)]},
        "overlap": {"runs": [run | {"val_bits_per_char": b} for b in (1.8, 2.1)]},
    }
    modern_cli.summarise(variants)
    assert variants["apart"]["separated_from_v5"] is True
    assert variants["overlap"]["separated_from_v5"] is False
    assert variants["apart"]["difference_from_v5"] == pytest.approx(-0.3)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--num-seeds", "0"], "--num-seeds: expected a positive integer, got 0"),
        (["--seed", "-1"], "--seed: expected a seed in [0, 2**32), got -1"),
        (["--steps", "x"], "--steps: expected a positive integer, got 'x'"),
        (["--device", "tpu"], "--device: expected auto, cpu or cuda, got 'tpu'"),
        (["--seed", str(2**32 - 2), "--num-seeds", "3"], "--num-seeds: expected seeds below"),
        (["--colour"], "unrecognized arguments: --colour"),
    ],
)
def test_bad_flags_exit_2_with_one_line_and_create_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        modern_cli.main([*flags, "--out", str(out)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert not out.exists()


@pytest.mark.slow
def test_quick_run_writes_everything_apart_from_full_runs_and_repeats_exactly(tmp_path):
    outputs = []
    for name in ("a", "b"):
        cwd = tmp_path / name
        cwd.mkdir()
        proc = subprocess.run(
            [sys.executable, str(ROOT / "experiments" / "modern_ablation.py"), "--quick",
             "--device", "cpu", "--num-seeds", "2"],
            capture_output=True, text=True, cwd=cwd, timeout=600,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        outputs.append(cwd / "results" / "modern_ablation" / "quick")
    first = outputs[0]
    assert sorted(p.name for p in first.iterdir()) == [
        "ablation.md", "ablation.png", "length_generalisation.png", "results.json",
        "throughput.json",
    ]  # fmt: skip
    text = (first / "results.json").read_text()
    assert text == (outputs[1] / "results.json").read_text()  # same seed, same file
    results = json.loads(text)
    assert results["quick"] is True and results["seeds"] == [0, 1]
    assert "A quick run" in (first / "ablation.md").read_text()
    assert results["variants"]["v5"]["length"]["runs_past_context"] is False
    assert results["variants"]["v7"]["length"]["runs_past_context"] is True
    assert oct((first / "results.json").stat().st_mode & 0o777) != "0o600"
