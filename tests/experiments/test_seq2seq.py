"""The sequence-to-sequence experiment: its tasks and splits, its layouts, its command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from transformer import ModelConfig
from transformer.experiments import seq2seq_cli, seq2seq_runner
from transformer.experiments import seq2seq_tasks as tasks
from transformer.lm import IGNORE_INDEX

ROOT = Path(__file__).resolve().parents[2]


def draw(task: str, n: int, split: str, seed: int = 0) -> list:
    return tasks.TASKS[task].examples(n, split, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("name", list(tasks.TASKS))
def test_held_out_sources_are_never_trained_on_and_longer_ones_are_longer(name):
    task = tasks.TASKS[name]
    train = draw(name, 3000, "train")
    heldout = draw(name, 300, "heldout", seed=1)
    longer = draw(name, 300, "longer", seed=2)
    assert not any(tasks.held_out(s) for s, _ in train)
    assert all(tasks.held_out(s) for s, _ in heldout)
    assert not {tuple(s) for s, _ in train} & {tuple(s) for s, _ in heldout}

    def length(source):  # the longer operand's digits for addition
        if not task.addition:
            return len(source)
        cut = source.index(tasks.PLUS)
        return max(cut, len(source) - cut - 1)

    longest_trained = max(length(s) for s, _ in train)
    assert longest_trained == task.lengths[1]
    assert min(length(s) for s, _ in longer) > longest_trained


def test_targets_are_what_each_task_says():
    for source, target in draw("reverse", 50, "train"):
        assert target == source[::-1]
    for source, target in draw("sort", 50, "train"):
        assert target == sorted(source) and len(target) == len(source)
    for source, target in draw("copy", 50, "train"):
        assert target == source
    for source, target in draw("add", 200, "train"):
        a, b = tasks.show(source).split("+")
        assert tasks.show(target) == str(int(a) + int(b))
        assert a[0] != "0" or a == "0"  # no leading zeros


def test_the_two_layouts_score_the_same_target_tokens():
    pairs = [([5, 6, 7], [7, 6, 5]), ([8], [8])]
    (src, tgt_in), targets = tasks.encoder_decoder_batch(pairs)
    assert src.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert tgt_in.tolist() == [[tasks.BOS, 7, 6, 5], [tasks.BOS, 8, 0, 0]]
    assert targets.tolist() == [[7, 6, 5, tasks.EOS], [8, tasks.EOS, IGNORE_INDEX, IGNORE_INDEX]]
    inputs, shifted = tasks.decoder_only_batch(pairs)
    assert inputs[0].tolist() == [5, 6, 7, tasks.SEP, 7, 6, 5]
    # the position holding SEP predicts the first target token; the source is not scored
    assert shifted[0].tolist() == [IGNORE_INDEX] * 3 + [7, 6, 5, tasks.EOS]
    assert sorted(targets[targets != IGNORE_INDEX].tolist()) == sorted(
        shifted[shifted != IGNORE_INDEX].tolist()
    )


def test_decoder_only_stages_are_matched_to_v6_in_size():
    size = seq2seq_runner.SIZE
    target = seq2seq_runner.count(seq2seq_runner.build("v6", size))
    for version in ("v5", "v7"):
        layers = seq2seq_runner.matched_layers(version, size)
        chosen = seq2seq_runner.count(seq2seq_runner.build(version, size, layers))
        for other in (layers - 1, layers + 1):
            if other >= 1:
                worse = seq2seq_runner.count(seq2seq_runner.build(version, size, other))
                assert abs(chosen - target) <= abs(worse - target)
        assert abs(chosen - target) / target < 0.15, (version, chosen, target)


def test_a_perfect_model_scores_full_marks():
    """The metrics on a model that always writes the right answer: exact match 1."""

    class Oracle(torch.nn.Module):
        """A decoder-only 'model' that puts all its weight on the true next token."""

        def __init__(self, pairs):
            super().__init__()
            self.answers = {tuple([*s, tasks.SEP]): [*t, tasks.EOS] for s, t in pairs}
            self.weight = torch.nn.Parameter(torch.zeros(1))
            self.config = ModelConfig(vocab_size=tasks.VOCAB_SIZE, causal=True, max_len=None)

        def forward(self, tokens):
            logits = torch.full((*tokens.shape, tasks.VOCAB_SIZE), -10.0)
            for row, sequence in enumerate(tokens.tolist()):
                for end in range(1, len(sequence) + 1):
                    prefix = tuple(sequence[:end])
                    for key, answer in self.answers.items():
                        if prefix[: len(key)] == key and len(prefix) >= len(key):
                            written = len(prefix) - len(key)
                            if written < len(answer):
                                logits[row, end - 1, answer[written]] = 10.0
            return logits

    task = tasks.TASKS["reverse"]
    generator = torch.Generator().manual_seed(1 + seq2seq_runner.EVAL_SEED_OFFSET + 1)
    pairs = task.examples(20, "heldout", generator)
    measured = seq2seq_runner.evaluate(Oracle(pairs), False, task, "heldout", 20, 1, "cpu")
    assert measured["exact_match"] == 1.0 and measured["token_accuracy"] == 1.0


BAD_FLAGS = [
    (["--version", "v1"], "--version: v1 cannot run seq2seq tasks: the sequence-to-sequence "
     "experiment compares the encoder-decoder (v6) with the GPT-family decoders v5 and v7"),
    (["--version", "v9"], "--version: unknown stage 'v9'; known stages: v1, v2, v3, v4, v5, v6, "
     "v7, all"),
    (["--task", "divide"], "--task: expected one of copy, reverse, sort, add or all, got 'divide'"),
    (["--schedule", "step"], "--schedule: expected cosine or inverse_sqrt, got 'step'"),
    (["--label-smoothing", "1.5"], "argument --label-smoothing: expected a number in [0, 1), "
     "got '1.5'"),
    (["--steps", "1"], "--steps: expected at least 2 (one warmup step, one more), got 1"),
    (["--num-seeds", "0"], "argument --num-seeds: expected a positive integer, got 0"),
    (["--device", "tpu"], "--device: expected auto, cpu or cuda, got 'tpu'"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "message"), BAD_FLAGS)
def test_bad_flags_exit_2_with_one_line_and_write_nothing(flags, message, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        seq2seq_cli.main([*flags, "--out", str(out)])
    assert caught.value.code == 2
    assert capsys.readouterr().err == f"seq2seq.py: error: {message}\n"
    assert not out.exists()


def run_script(*args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "seq2seq.py"), *args],
        capture_output=True, text=True, cwd=cwd, timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )  # fmt: skip


def test_a_quick_run_writes_its_results_and_the_same_seed_gives_the_same_file(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        proc = run_script("--quick", "--task", "reverse", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (first / "v6").iterdir()) == [
        "attention_reverse.html", "cross_attention_reverse.png", "loss_curves.png",
        "results.json",
    ]  # fmt: skip
    assert (first / "v6" / "attention_reverse.html").read_bytes() == (
        second / "v6" / "attention_reverse.html"
    ).read_bytes()
    raw = (first / "v6" / "results.json").read_bytes()
    assert raw == (second / "v6" / "results.json").read_bytes()
    results = json.loads(raw)
    assert results["quick"] is True and results["seeds"] == [0]
    run = results["tasks"]["reverse"]["runs"][0]
    for split in ("heldout", "longer"):
        assert run[split]["examples"] == seq2seq_runner.QUICK_EVAL_EXAMPLES
        assert 0.0 <= run[split]["exact_match"] <= 1.0
        assert 0.0 <= run[split]["token_accuracy"] <= 1.0
    assert run["beam"]["beam_size"] == seq2seq_runner.BEAM_SIZE
    assert set(run["cross_attention_alignment_mass"]) == {"layer0"}
    assert results["training"]["schedule"] == "inverse_sqrt"
    assert results["training"]["label_smoothing"] == 0.1


@pytest.mark.slow
def test_all_stages_side_by_side_over_seeds(tmp_path):
    proc = run_script("--quick", "--version", "all", "--task", "copy", "--num-seeds", "2",
                      "--out", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    comparison = json.loads((tmp_path / "comparison.json").read_text())
    row = comparison["tasks"]["copy"]
    assert set(row) == {"v5", "v6", "v7", "v6_apart_from"}
    for version in ("v5", "v6", "v7"):
        cells = row[version]["heldout_exact_match"]
        assert cells["min"] <= cells["mean"] <= cells["max"]
    assert "mean and min-max over seeds 0, 1" in (tmp_path / "comparison.md").read_text()
    assert (tmp_path / "comparison.png").read_bytes()[:4] == b"\x89PNG"


def test_default_folder_of_a_quick_run_is_its_own(tmp_path):
    proc = run_script("--quick", "--task", "copy", "--steps", "3", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "results" / "seq2seq" / "quick" / "v6" / "results.json").is_file()
    assert not (tmp_path / "results" / "seq2seq" / "v6").exists()
