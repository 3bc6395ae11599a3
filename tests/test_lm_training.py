"""transformer.lm: the one training loop's schedule, clipping, exact resume, safe checkpoints,
the corpus, and the language-model experiment's command line."""

import json
import math
import os
import pickle
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from transformer.experiments import language_model
from transformer.lm.checkpoint import (
    CheckpointError,
    flatten_state,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    unflatten_state,
)
from transformer.lm.corpus import (
    CorpusConfig,
    is_val_file,
    load_corpus,
    path_hash,
    sample_batch,
    unigram_baseline,
)
from transformer.lm.training import (
    TrainConfig,
    build_optimizer,
    learning_rate_at,
    train,
    train_step,
)
from transformer.v5_gpt import GPT, GPTConfig

ROOT = Path(__file__).resolve().parents[1]
TINY = GPTConfig(vocab_size=256, n_positions=16, n_embd=16, n_layer=2, n_head=2)  # dropout 0.1
BLOCK = 16
SHORT = TrainConfig(steps=12, batch_size=4, warmup_steps=3, eval_interval=4, eval_batches=2)
SMALL_CORPUS = CorpusConfig(train_bytes=60_000, val_bytes=20_000)


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(SMALL_CORPUS)


def tiny_model(seed: int = 0, config: GPTConfig = TINY) -> GPT:
    torch.manual_seed(seed)
    return GPT(config)


# --- the learning-rate schedule -----------------------------------------------------------


def test_schedule_warmup_peak_cosine_floor():
    config = TrainConfig(steps=101, warmup_steps=10, learning_rate=1e-3, min_learning_rate=1e-4)
    lrs = [learning_rate_at(s, config) for s in range(130)]
    assert lrs[0] == pytest.approx(1e-4)  # 1/10 of the peak after the first warmup step
    assert lrs[4] == pytest.approx(5e-4)
    assert lrs[9] == pytest.approx(1e-3) and lrs[10] == pytest.approx(1e-3)  # the peak
    assert lrs[55] == pytest.approx(5.5e-4)  # half way down the cosine: (peak + floor) / 2
    assert lrs[100] == pytest.approx(1e-4)  # the last step sits on the floor
    assert all(lr == pytest.approx(1e-4) for lr in lrs[100:])  # and stays there


def test_schedule_quarter_points_by_hand():
    """steps 91, warmup 10: the cosine runs over steps 10..90, so 30 and 70 are its quarters.
    1e-4 + 9e-4 * (1 ± cos(π/4)) / 2, worked out by hand."""
    config = TrainConfig(steps=91, warmup_steps=10, learning_rate=1e-3, min_learning_rate=1e-4)
    assert learning_rate_at(30, config) == pytest.approx(8.6819805e-4, rel=1e-7)
    assert learning_rate_at(50, config) == pytest.approx(5.5e-4, rel=1e-12)
    assert learning_rate_at(70, config) == pytest.approx(2.3180195e-4, rel=1e-7)


def test_schedule_without_warmup_starts_at_the_peak():
    config = TrainConfig(steps=5, warmup_steps=0, learning_rate=2e-3, min_learning_rate=0.0)
    assert [learning_rate_at(s, config) for s in range(5)] == pytest.approx(
        [
            2e-3,
            2e-3 * (1 + math.cos(math.pi / 4)) / 2,
            1e-3,
            2e-3 * (1 - math.cos(math.pi / 4)) / 2,
            0,
        ]
    )


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 0, "steps: expected a positive integer, got 0"),
        ("batch_size", 2.5, "batch_size: expected a positive integer, got 2.5"),
        ("warmup_steps", 2500, "warmup_steps: expected an integer in [0, steps=2500), got 2500"),
        ("learning_rate", 0.0, "learning_rate: expected a number > 0, got 0.0"),
        ("min_learning_rate", 1.0, "min_learning_rate: expected at most learning_rate=0.003"),
        ("beta2", 1.0, "beta2: expected a number in [0.0, 1.0), got 1.0"),
        ("weight_decay", -0.1, "weight_decay: expected a number >= 0.0, got -0.1"),
        ("grad_clip", 0, "grad_clip: expected a number > 0 or None, got 0"),
        ("eval_interval", True, "eval_interval: expected a positive integer, got True"),
    ],
)
def test_train_config_names_the_bad_field(field, value, message):
    with pytest.raises(ValueError) as caught:
        replace(TrainConfig(), **{field: value})
    assert message in str(caught.value)


# --- optimizer and clipping ---------------------------------------------------------------


def test_weight_decay_only_on_matrices_and_embeddings():
    model = tiny_model()
    decay, no_decay = build_optimizer(model, SHORT).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    decayed = {names[id(p)] for p in decay["params"]}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {"wte.weight", "wpe.weight"} <= decayed  # lm_head is wte: tied, listed once
    assert all(not n.endswith("bias") and ".ln" not in n and "ln_f" not in n for n in decayed)
    undecayed = {names[id(p)] for p in no_decay["params"]}
    assert "ln_f.weight" in undecayed and "ln_f.bias" in undecayed
    assert len(decayed) + len(undecayed) == len(list(model.parameters()))


def grad_norm(model) -> float:
    return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()])).item()


@pytest.mark.parametrize("clip", [1e-3, 0.05])
def test_clipping_bounds_the_gradient_norm(clip):
    model, generator = tiny_model(), torch.Generator().manual_seed(0)
    optimizer = build_optimizer(model, SHORT)
    inputs, targets = sample_batch(torch.arange(200) % 256, 4, 16, generator)
    loss, norm = train_step(model, optimizer, inputs, targets, 1e-3, grad_clip=clip)
    assert norm > 10 * clip  # clipping had work to do
    assert grad_norm(model) == pytest.approx(clip, rel=1e-4)  # and brought it down to the clip
    assert math.isfinite(loss)


def test_without_clipping_the_norm_is_untouched():
    model, generator = tiny_model(), torch.Generator().manual_seed(0)
    inputs, targets = sample_batch(torch.arange(200) % 256, 4, 16, generator)
    _, norm = train_step(model, build_optimizer(model, SHORT), inputs, targets, 1e-3, None)
    assert grad_norm(model) == pytest.approx(norm, rel=1e-5) and norm > 1e-2


# --- exact resume -------------------------------------------------------------------------


def states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def windows(data: torch.Tensor):
    return lambda n, g: sample_batch(data, n, BLOCK, g)


def eval_sets(corpus) -> dict:
    return {"train": windows(corpus.train), "val": windows(corpus.val)}


def run(tmp_path: Path, corpus, seed=0, **kwargs):
    model = tiny_model(seed)
    result = train(
        model,
        windows(corpus.train),
        eval_sets(corpus),
        SHORT,
        torch.Generator().manual_seed(seed),
        checkpoint_path=tmp_path / "ckpt.safetensors",
        progress=False,
        **kwargs,
    )
    return model, result


@pytest.mark.parametrize("stop", [4, 5])  # at an evaluation, and between two
def test_resume_equals_an_uninterrupted_run_bit_for_bit(tmp_path, corpus, stop):
    whole, whole_result = run(tmp_path / "whole", corpus)
    rng_after_whole = torch.get_rng_state()  # dropout drew from it
    run(tmp_path / "cut", corpus, stop_after=stop)  # interrupted after `stop` steps
    torch.manual_seed(99)  # the resumed run's own randomness must not matter
    resumed, resumed_result = run(tmp_path / "cut", corpus, seed=7, resume=True)
    assert resumed_result.step == whole_result.step == SHORT.steps
    assert states_equal(resumed.state_dict(), whole.state_dict())
    assert resumed_result.history == whole_result.history
    flat_whole, flat_resumed = {}, {}
    flatten_state(whole_result.optimizer.state_dict(), "o", flat_whole)
    flatten_state(resumed_result.optimizer.state_dict(), "o", flat_resumed)
    assert states_equal(flat_resumed, flat_whole)
    assert torch.equal(torch.get_rng_state(), rng_after_whole)


def test_resume_check_can_fail(tmp_path, corpus):
    """The comparison above is not trivially true: another seed gives other weights."""
    first, _ = run(tmp_path / "a", corpus, seed=0)
    other, _ = run(tmp_path / "b", corpus, seed=1)
    assert not states_equal(first.state_dict(), other.state_dict())
    assert not states_equal(first.state_dict(), tiny_model(0).state_dict())  # it trained


def test_resume_refuses_other_training_settings(tmp_path, corpus):
    run(tmp_path, corpus, stop_after=3, extra={"seed": 0})
    with pytest.raises(
        CheckpointError, match=r"differ in 1 field\(s\): seed \(checkpoint 0, this run 1\)"
    ):
        run(tmp_path, corpus, resume=True, extra={"seed": 1})
    model = tiny_model()
    with pytest.raises(CheckpointError, match=r"learning_rate \(checkpoint 0.003, this run 0.001"):
        train(
            model,
            windows(corpus.train),
            eval_sets(corpus),
            replace(SHORT, learning_rate=1e-3),
            torch.Generator(),
            checkpoint_path=tmp_path / "ckpt.safetensors",
            resume=True,
            progress=False,
            extra={"seed": 0},
        )


def test_resuming_with_more_steps_extends_the_run(tmp_path, corpus):
    finished, done = run(tmp_path, corpus, extra={"seed": 0})
    assert done.step == SHORT.steps
    before = {k: v.clone() for k, v in finished.state_dict().items()}
    longer = replace(SHORT, steps=SHORT.steps + 4)
    extended = train(
        tiny_model(), windows(corpus.train), eval_sets(corpus), longer, torch.Generator(),
        checkpoint_path=tmp_path / "ckpt.safetensors", resume=True, progress=False,
        extra={"seed": 0},
    )  # fmt: skip
    assert extended.step == SHORT.steps + 4
    history = extended.history
    assert len(history.train_loss) == SHORT.steps + 4
    assert history.train_loss[: SHORT.steps] == done.history.train_loss  # the run it extends
    assert history.evals[-1]["step"] == SHORT.steps + 4
    with pytest.raises(CheckpointError, match=r"expected a step <= steps=12, got step 16"):
        train(
            tiny_model(), windows(corpus.train), eval_sets(corpus), SHORT, torch.Generator(),
            checkpoint_path=tmp_path / "ckpt.safetensors", resume=True, progress=False,
            extra={"seed": 0},
        )  # fmt: skip
    saved = read_checkpoint(tmp_path / "ckpt.safetensors")
    assert saved.step == SHORT.steps + 4
    assert not states_equal(before, saved.part("model/"))  # it trained on


# --- checkpoints: safetensors only, matching configs, no pickle ---------------------------


@pytest.fixture
def no_pickle(monkeypatch):
    """Make every way to unpickle fail loudly, so a test shows that none is used."""

    def forbidden(*args, **kwargs):
        raise AssertionError("unpickling was attempted")

    class ForbiddenUnpickler(pickle.Unpickler):
        load = forbidden

    for owner, name in ((pickle, "load"), (pickle, "loads"), (torch, "load")):
        monkeypatch.setattr(owner, name, forbidden)
    monkeypatch.setattr(torch.serialization, "load", forbidden)
    monkeypatch.setattr(pickle, "Unpickler", ForbiddenUnpickler)


def test_the_no_pickle_fixture_catches_unpickling(tmp_path, no_pickle):
    torch.serialization.save({"x": 1}, tmp_path / "x.pt")
    for attempt in (
        lambda: torch.load(tmp_path / "x.pt", weights_only=True),
        lambda: pickle.loads(pickle.dumps(1)),
        lambda: pickle.Unpickler((tmp_path / "x.pt").open("rb")).load(),
    ):
        with pytest.raises(AssertionError, match="unpickling was attempted"):
            attempt()


def saved_checkpoint(path: Path) -> tuple[GPT, torch.optim.Optimizer]:
    model = tiny_model(3)
    optimizer = build_optimizer(model, SHORT)
    generator = torch.Generator().manual_seed(0)
    inputs, targets = sample_batch(torch.arange(100) % 256, 2, 16, generator)
    train_step(model, optimizer, inputs, targets, 1e-3, 1.0)
    rng = {"batches": generator.get_state()}
    save_checkpoint(path, model, optimizer, step=1, rng=rng, extra={"note": "x"})
    return model, optimizer


def test_checkpoint_round_trip_without_pickle(tmp_path, no_pickle):
    model, optimizer = saved_checkpoint(tmp_path / "c.safetensors")
    fresh = tiny_model(4)
    fresh_optimizer = build_optimizer(fresh, SHORT)
    loaded = load_checkpoint(tmp_path / "c.safetensors", fresh, fresh_optimizer)
    assert loaded.step == 1 and loaded.extra == {"note": "x"}
    assert states_equal(fresh.state_dict(), model.state_dict())
    assert fresh.lm_head.weight is fresh.wte.weight  # still tied after loading
    before, after = {}, {}
    flatten_state(optimizer.state_dict(), "o", before)
    flatten_state(fresh_optimizer.state_dict(), "o", after)
    assert len(before) == 3 * len(list(model.parameters()))  # step, exp_avg, exp_avg_sq
    assert states_equal(before, after)
    assert fresh_optimizer.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]


def test_checkpoint_files_are_byte_identical_for_equal_states(tmp_path):
    saved_checkpoint(tmp_path / "a.safetensors")
    saved_checkpoint(tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()


def test_optimizer_state_flattens_and_comes_back():
    state = {
        "state": {0: {"step": torch.tensor(3.0), "m": torch.ones(2)}},
        "groups": [{"betas": (0.9, 0.99), "params": [0]}],
    }
    tensors = {}
    tree = json.loads(json.dumps(flatten_state(state, "optimizer", tensors)))  # JSON-safe
    assert sorted(tensors) == ["optimizer/state/0/m", "optimizer/state/0/step"]
    back = unflatten_state(tree, tensors)
    assert list(back["state"]) == [0]  # the integer key stays an integer
    assert torch.equal(back["state"][0]["m"], torch.ones(2))
    assert back["groups"] == [{"betas": (0.9, 0.99), "params": [0]}]  # a tuple again


def test_a_torch_save_file_is_refused_by_name_without_unpickling(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    torch.save(tiny_model().state_dict(), path)  # a zip archive holding a pickle
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load was called"))
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, tiny_model())
    message = str(caught.value)
    assert str(path) in message and "expected a safetensors file" in message
    assert "zip archive" in message and "torch.save" in message


@pytest.mark.parametrize(
    ("content", "what"),
    [
        (pickle.dumps({"weights": [1, 2]}), "a pickle stream"),
        (b"hello", "a file starting with b'hello'"),
        ((20).to_bytes(8, "little") + b"[1, 2, 3, 4, 5, 6, 7, 8]", "header is not a JSON object"),
    ],
)
def test_files_that_are_not_safetensors_are_refused(tmp_path, no_pickle, content, what):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="expected a safetensors file") as caught:
        load_checkpoint(path, tiny_model())
    assert str(path) in str(caught.value) and what in str(caught.value)


def test_other_safetensors_files_and_missing_files_are_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"expected a training checkpoint.*\['format'\]"):
        load_checkpoint(path, tiny_model())
    with pytest.raises(FileNotFoundError, match="path: expected a checkpoint file, got .*nope"):
        load_checkpoint(tmp_path / "nope", tiny_model())


def test_a_checkpoint_of_another_config_lists_the_differing_fields(tmp_path):
    saved_checkpoint(tmp_path / "c.safetensors")
    other = tiny_model(5, replace(TINY, n_embd=32, n_layer=3))
    before = {k: v.clone() for k, v in other.state_dict().items()}
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(tmp_path / "c.safetensors", other)
    message = str(caught.value)
    assert str(tmp_path / "c.safetensors") in message
    assert "model config differs from the model's in 2 field(s)" in message
    assert "n_embd (checkpoint 16, model 32)" in message
    assert "n_layer (checkpoint 2, model 3)" in message
    assert states_equal(other.state_dict(), before)  # nothing was loaded


# --- the corpus ---------------------------------------------------------------------------


def test_split_is_deterministic_and_by_file(corpus):
    again = load_corpus(SMALL_CORPUS)
    assert again.train_files == corpus.train_files and again.val_files == corpus.val_files
    assert torch.equal(again.train, corpus.train) and torch.equal(again.val, corpus.val)
    assert not set(corpus.train_files) & set(corpus.val_files)
    assert all(is_val_file(f, SMALL_CORPUS.val_every) for f in corpus.val_files)
    assert not any(is_val_file(f, SMALL_CORPUS.val_every) for f in corpus.train_files)
    assert corpus.train.numel() <= SMALL_CORPUS.train_bytes and corpus.val.numel() > 1000
    assert int(corpus.train.max()) < 128  # ASCII only: a byte is a character


def test_corpus_filters_files(tmp_path):
    names = [f"pkg/mod{i}.py" for i in range(60)]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(f"x = {name!r}\n")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("skipped = 1\n")
    (tmp_path / "accents.py").write_bytes("s = 'é'\n".encode())
    (tmp_path / "big.py").write_text("#" * 200 + "\n")
    config = CorpusConfig(train_bytes=10_000, val_bytes=10_000, max_file_bytes=100)
    corpus = load_corpus(config, root=tmp_path)
    chosen = set(corpus.train_files) | set(corpus.val_files)
    assert chosen == set(names)  # no tests/, no non-ASCII file, no file over the size limit
    assert corpus.val_files == tuple(sorted(corpus.val_files, key=lambda f: (path_hash(f), f)))
    assert set(corpus.val_files) == {f for f in names if is_val_file(f, 10)}
    with pytest.raises(FileNotFoundError, match="root: expected a directory"):
        load_corpus(config, root=tmp_path / "missing")


def test_batches_are_windows_and_their_next_bytes():
    data = torch.arange(50, dtype=torch.uint8)  # (50,)
    inputs, targets = sample_batch(data, 8, 10, torch.Generator().manual_seed(0))
    assert inputs.shape == targets.shape == (8, 10) and inputs.dtype == torch.int64
    assert torch.equal(targets, inputs + 1)  # next byte
    assert torch.equal(inputs[:, 1:], inputs[:, :-1] + 1)  # contiguous windows
    again, _ = sample_batch(data, 8, 10, torch.Generator().manual_seed(0))
    other, _ = sample_batch(data, 8, 10, torch.Generator().manual_seed(1))
    assert torch.equal(inputs, again) and not torch.equal(inputs, other)
    with pytest.raises(ValueError, match=r"data: expected at least block_size \+ 1 = 51 tokens"):
        sample_batch(data, 1, 50, torch.Generator())


def test_unigram_baseline_by_hand():
    train, val = torch.tensor(list(b"aab")), torch.tensor(list(b"ab"))
    plain = unigram_baseline(train, val, vocab_size=256, smoothing=0.0)
    by_hand = -(math.log(2 / 3) + math.log(1 / 3)) / 2  # p(a) = 2/3, p(b) = 1/3
    assert plain["nats"] == pytest.approx(by_hand, rel=1e-12)
    assert plain["bits"] == pytest.approx(by_hand / math.log(2), rel=1e-12)
    # add-one over a 3-symbol vocabulary {a=0, b=1, c=2}: counts 3, 2, 1 of 6
    small = unigram_baseline(torch.tensor([0, 0, 1]), torch.tensor([0, 1, 2]), 3, smoothing=1.0)
    assert small["nats"] == pytest.approx(
        -(math.log(3 / 6) + math.log(2 / 6) + math.log(1 / 6)) / 3
    )


# --- the experiment script ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["--steps", "0"], "--steps: expected a positive integer, got 0"),
        (["--steps", "many"], "argument --steps: expected a positive integer, got 'many'"),
        (["--device", "tpu"], "--device: expected auto, cpu or cuda, got 'tpu'"),
        (["--n-embd", "30", "--n-head", "4"], "d_model: expected a multiple of num_heads=4"),
        (["--d-model", "30", "--num-heads", "4"], "d_model: expected a multiple of num_heads=4"),
        (["--version", "v9"], "--version: unknown stage 'v9'; known stages: v1"),
        (["--version", "v6"], "--version: v6 cannot run next-token tasks: its encoder sees"),
        (["--version", "v1", "--num-heads", "2"], "num_heads: expected 1 for v1"),
        (
            ["--option", "norm_first=true"],
            "norm_first: expected it unset, since v5 has no such setting",
        ),
        (["--seed", str(2**64)], "expected a seed in [0, 2**32)"),
        (["--warmup-steps", "30"], "warmup_steps: expected an integer in [0, steps=30), got 30"),
        (["--resume"], "--resume: expected a checkpoint at"),
    ],
)
def test_bad_flags_exit_2_with_one_line(tmp_path, capsys, flags, message):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        language_model.main([*flags, "--out", str(out), "--quick"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("language_model.py: error: ") and message in err
    assert not out.exists()  # nothing written


def test_out_must_be_writable(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as caught:
        language_model.main(["--out", str(tmp_path / "file" / "sub")])
    assert caught.value.code == 2 and "is a file" in capsys.readouterr().err


def run_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "experiments" / "language_model.py"), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


@pytest.mark.slow
def test_quick_run_writes_results_and_figures_and_repeats_exactly(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for out in (first, second):
        proc = run_script("--quick", "--device", "cpu", "--seed", "3", "--out", str(out))
        assert proc.returncode == 0, proc.stderr
    assert "bits/char" in proc.stdout and "unigram baseline" in proc.stdout
    names = sorted(p.name for p in first.iterdir())
    assert names == [
        "attention.html", "checkpoint.safetensors", "loss_curves.png", "lr_schedule.png",
        "results.json",
    ]  # fmt: skip
    assert (first / "attention.html").read_bytes() == (second / "attention.html").read_bytes()
    for png in ("loss_curves.png", "lr_schedule.png"):
        assert (first / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (first / "results.json").read_text()
    assert text == (second / "results.json").read_text()  # same seed, same file
    result = json.loads(text)
    assert result["seed"] == 3 and result["steps_done"] == result["training"]["steps"]
    shown = result["attention"]  # the page's data: the start of val, every layer and head
    assert len(shown["attention"]) == result["model"]["num_layers"]
    assert len(shown["attention"][0]) == result["model"]["num_heads"]
    assert len(shown["tokens"]) == len(shown["attention"][0][0]) == len(shown["attention"][0][0][0])
    assert all(len(table) == len(shown["attention"]) for table in shown["scores"].values())
    base, final = result["baselines"], result["final"]
    assert base["unigram_bits_per_char"] == pytest.approx(
        base["unigram_nats"] / math.log(2), abs=1e-5
    )
    assert final["val_bits_per_char"] == pytest.approx(final["val_loss"] / math.log(2), abs=1e-5)
    assert final["val_loss"] < base["uniform_nats"]  # it learned something in 30 steps
    assert len(result["samples"]) == 6 and all(
        s["text"].startswith(s["prompt"]) for s in result["samples"]
    )
    curves = result["curves"]
    assert curves["eval_steps"][0] == 0 and curves["eval_steps"][-1] == result["training"]["steps"]
    # resuming a finished run trains nothing more and reports the same numbers
    proc = run_script("--quick", "--device", "cpu", "--seed", "3", "--out", str(first), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert (first / "results.json").read_text() == text
    assert "finished at step 30; nothing to train (pass --steps N with N > 30" in proc.stdout
    # resuming with another seed is refused in one line
    proc = run_script("--quick", "--device", "cpu", "--seed", "4", "--out", str(first), "--resume")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "seed (checkpoint 3, this run 4)" in proc.stderr
    # --steps below the checkpoint's step is refused before any work; above it extends the run
    proc = run_script("--quick", "--device", "cpu", "--seed", "3", "--out", str(first), "--resume",
                      "--steps", "20")  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "--steps: expected at least 30, the step of the checkpoint" in proc.stderr
    proc = run_script("--quick", "--device", "cpu", "--seed", "3", "--out", str(first), "--resume",
                      "--steps", "40")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    extended = json.loads((first / "results.json").read_text())
    assert extended["steps_done"] == 40 and extended["training"]["steps"] == 40
    assert extended["curves"]["eval_steps"][-1] == 40


def test_a_non_causal_language_model_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        language_model.main(["--version", "v2", "--option", "causal=false", "--out", str(tmp_path)])
    assert caught.value.code == 2
    assert "causal: expected True to train a language model" in capsys.readouterr().err


# --- gradient accumulation ------------------------------------------------------------------


def unevenly_scored_batches(count: int, batch: int, generator: torch.Generator):
    """Batches whose rows score different numbers of targets (the rest are IGNORE_INDEX), so
    that a mean of micro-batch means would weigh the rows wrongly."""
    found = []
    for _ in range(count):
        inputs = torch.randint(0, 256, (batch, BLOCK), generator=generator)  # (B, T)
        targets = torch.randint(0, 256, (batch, BLOCK), generator=generator)  # (B, T)
        for row in range(batch):
            targets[row, : 2 * row] = -100  # row r scores T - 2r targets
        found.append((inputs, targets))
    return found


@pytest.mark.parametrize("grad_accum", [2, 4])
def test_accumulated_micro_batches_take_the_same_steps_as_the_whole_batch(grad_accum):
    """Same losses, gradient norms and weights after several AdamW steps, to 1e-5."""
    config = replace(TINY, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    batches = unevenly_scored_batches(5, 8, torch.Generator().manual_seed(3))
    runs = []
    for parts in (1, grad_accum):
        model = tiny_model(0, config)
        optimizer = build_optimizer(model, SHORT)
        steps = [
            train_step(model, optimizer, x, y, 3e-3, 1.0, step, grad_accum=parts)
            for step, (x, y) in enumerate(batches)
        ]
        runs.append((steps, model.state_dict()))
    (whole, whole_weights), (parts, part_weights) = runs
    for (loss, norm), (part_loss, part_norm) in zip(whole, parts, strict=True):
        assert part_loss == pytest.approx(loss, rel=1e-5, abs=1e-6)
        assert part_norm == pytest.approx(norm, rel=1e-5, abs=1e-6)
    for name, value in whole_weights.items():
        torch.testing.assert_close(part_weights[name], value, atol=1e-5, rtol=1e-5, msg=name)
    assert not torch.equal(whole_weights["wte.weight"], tiny_model(0, config).wte.weight)


def test_grad_accum_must_divide_the_batch():
    with pytest.raises(ValueError, match=r"grad_accum: expected a divisor of batch_size=4 .* 3"):
        replace(SHORT, grad_accum=3)
    with pytest.raises(ValueError, match=r"grad_accum: expected a positive integer, got 0"):
        replace(SHORT, grad_accum=0)


def test_language_model_grad_accum_flag_is_checked_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as caught:
        language_model.main(["--quick", "--grad-accum", "3", "--out", str(out)])
    assert caught.value.code == 2
    assert capsys.readouterr().err == (
        "language_model.py: error: --grad-accum: expected a divisor of --batch-size=8 (each "
        "batch is split into K equal micro-batches), got 3\n"
    )
    assert not out.exists()


def test_a_checkpoint_from_before_grad_accum_resumes(tmp_path, corpus):
    """Checkpoints written before the field existed hold no grad_accum: they mean 1."""
    from transformer.lm import checkpoint as ckpt

    path = tmp_path / "run.safetensors"
    model, generator = tiny_model(), torch.Generator().manual_seed(0)
    sample = lambda n, g: sample_batch(corpus.train, n, BLOCK, g)  # noqa: E731
    train(model, sample, {"val": sample}, SHORT, generator, checkpoint_path=path, stop_after=4)
    saved = ckpt.read_checkpoint(path)
    old = {k: v for k, v in saved.train_config.items() if k != "grad_accum"}
    fresh = tiny_model()
    optimizer = build_optimizer(fresh, SHORT)
    load_checkpoint(saved, fresh, optimizer)
    save_checkpoint(path, fresh, optimizer, step=saved.step, rng=saved.rng, train_config=old,
                    history=saved.history, extra=saved.extra)  # fmt: skip
    generator = torch.Generator().manual_seed(0)
    resumed = train(
        tiny_model(), sample, {"val": sample}, SHORT, generator, checkpoint_path=path, resume=True
    )
    assert resumed.step == SHORT.steps


def test_the_training_loop_feeds_the_model_micro_batches(corpus):
    """With grad_accum=2 every training forward pass sees half the batch, and the run ends
    where the whole-batch run ends."""
    config = replace(TINY, embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)
    sample = lambda n, g: sample_batch(corpus.train, n, BLOCK, g)  # noqa: E731
    results = {}
    for parts in (1, 2):
        model = tiny_model(0, config)
        sizes = []

        def record(module, args, out, sizes=sizes):
            if module.training:
                sizes.append(args[0].shape[0])

        model.register_forward_hook(record)
        chosen = replace(SHORT, grad_accum=parts)
        result = train(model, sample, {"val": sample}, chosen, torch.Generator().manual_seed(0))
        results[parts] = (sizes, result.history.train_loss, model.state_dict())
        assert set(sizes) == {SHORT.batch_size // parts}
        assert len(sizes) == SHORT.steps * parts
    torch.testing.assert_close(results[2][1], results[1][1], atol=1e-5, rtol=1e-5)
    for name, value in results[1][2].items():
        torch.testing.assert_close(results[2][2][name], value, atol=1e-5, rtol=1e-5, msg=name)
