"""The benchmarks' shared command line (``benchmarks/_cli.py``), without measuring anything.

A bad flag exits with status 2 and one stderr line that names it, before any work and
without writing a file; ``--quick`` writes to its own default file, so a quick run never
overwrites a full run's results.
"""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
# the benchmarks import their siblings as top-level modules (``from _cli import ...``)
MODULES = ("_cli", "_harness", "_measure", "_report", "attention", "block", "gpt", "distributed",
           "tiled_attention", "generation", "kv_cache", "compiled")  # fmt: skip
# if a check were missing, the run would go on: keep it short, so the test fails fast
SHORT = ["--quick", "--seq-lens", "8", "--device", "cpu", "--threads", "1"]


def run_benchmark(script: str, *flags: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{script}.py"), *flags],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def files_under(path: Path) -> list[Path]:
    """Every file, folder and link under ``path``."""
    return sorted(path.rglob("*"))


@pytest.fixture
def benchmark(monkeypatch):
    """``benchmark("attention")``: that script's module, imported as the scripts import it."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    saved = {name: sys.modules.pop(name) for name in MODULES if name in sys.modules}
    yield importlib.import_module
    for name in MODULES:
        sys.modules.pop(name, None)
    sys.modules.update(saved)


# (script, the bad flags, the flag the message must name); the bad flags come last, so they
# win over SHORT's; "FILE" is a regular file in tmp_path
BAD_FLAGS = [
    ("attention", ["--seed", "-1"], "--seed"),
    ("block", ["--out", "FILE/a.json"], "--out"),
    ("gpt", ["--device", "tpu"], "--device"),
    ("tiled_attention", ["--block-size", "0"], "--block-size"),
]
# the v8 scripts' own flags, checked in this process (the shared path is proven end to end
# above: a subprocess per script costs seconds)
OWN_BAD_FLAGS = [
    ("generation", ["--prompt", "0"], "--prompt"),
    ("kv_cache", ["--n-layer", "0"], "--n-layer"),
    ("compiled", ["--n-head", "3"], "--n-embd"),
]


@pytest.mark.parametrize(
    ("script", "bad", "flag"), OWN_BAD_FLAGS, ids=[b[0] for b in OWN_BAD_FLAGS]
)
def test_own_bad_flag_exits_2_with_one_line_while_parsing(benchmark, capsys, script, bad, flag):
    cli, module = benchmark("_cli"), benchmark(script)
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(module.BENCHMARK, [*SHORT, *bad])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and ": error: " in err[0] and flag in err[0], err


@pytest.mark.parametrize(("script", "bad", "flag"), BAD_FLAGS, ids=[b[2] for b in BAD_FLAGS])
def test_bad_flag_exits_2_with_one_line(tmp_path, script, bad, flag):
    regular = tmp_path / "FILE"
    regular.write_text("not a directory\n")
    bad = [arg.replace("FILE", str(regular)) for arg in bad]
    done = run_benchmark(script, *SHORT, "--out", str(tmp_path / "out" / "r.json"), *bad)
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}: {done.stderr[-2000:]}"
    assert lines[0].startswith(f"{script}.py: error: ") and flag in lines[0], lines[0]
    assert done.stdout == ""
    assert files_under(tmp_path) == [regular]  # nothing written, no folder made


def bad_outs(tmp_path: Path) -> dict[str, Path]:
    """--out values that cannot be written, by what is wrong with them."""
    regular = tmp_path / "regular"
    regular.write_text("x\n")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    return {
        "under a regular file": regular / "a.json",
        "deeper under a regular file": regular / "sub" / "a.json",
        "a directory": tmp_path,
        "a dangling symlink": tmp_path / "dangling",
        "under a dangling symlink": tmp_path / "dangling" / "a.json",
    }


@pytest.mark.parametrize(
    "what",
    [
        "under a regular file",
        "deeper under a regular file",
        "a directory",
        "a dangling symlink",
        "under a dangling symlink",
    ],
)
def test_unwritable_out_is_rejected_while_parsing(benchmark, tmp_path, capsys, what):
    cli, block = benchmark("_cli"), benchmark("block")
    out = bad_outs(tmp_path)[what]
    before = files_under(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        cli.parse_args(block.BENCHMARK, ["--out", str(out)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and ": error: --out: " in err[0], err
    assert files_under(tmp_path) == before


def test_writable_out_is_accepted(benchmark, tmp_path):
    cli, block = benchmark("_cli"), benchmark("block")
    args = cli.parse_args(block.BENCHMARK, ["--out", str(tmp_path / "new" / "dir" / "a.json")])
    assert args.out == tmp_path / "new" / "dir" / "a.json"
    assert files_under(tmp_path) == []  # parsing creates nothing


def test_quick_has_its_own_default_out_and_short_settings(benchmark):
    cli, harness, attention = benchmark("_cli"), benchmark("_harness"), benchmark("attention")
    bench = attention.BENCHMARK
    full = cli.parse_args(bench, [])
    quick = cli.parse_args(bench, ["--quick"])
    assert full.out == harness.RESULTS_DIR / "attention.json"
    assert quick.out == harness.RESULTS_DIR / "attention.quick.json"
    assert (full.seq_lens, full.repeats, full.budget, full.warmup) == ([128, 512, 2048], 30, 2, 1)
    assert (quick.seq_lens, quick.repeats, quick.budget, quick.warmup) == ([128], 3, 0.2, 0)
    assert harness.settings_of(bench, full, ["cpu"], 1)["quick"] is False
    assert harness.settings_of(bench, quick, ["cpu"], 1)["quick"] is True


def test_flags_given_explicitly_win_over_quick(benchmark, tmp_path):
    cli, attention = benchmark("_cli"), benchmark("attention")
    argv = ["--quick", "--seq-lens", "512", "--repeats", "7", "--warmup", "2"]
    args = cli.parse_args(attention.BENCHMARK, [*argv, "--out", str(tmp_path / "a.json")])
    assert (args.seq_lens, args.repeats, args.warmup, args.budget) == ([512], 7, 2, 0.2)
    assert args.out == tmp_path / "a.json" and args.quick


# distributed.py has its own flags (process counts, not sequence lengths)
DISTRIBUTED_BAD = [
    (["--processes", "0"], "--processes"),
    (["--processes", "1", "3"], "--batch-size"),  # 16 rows do not split over 3 processes
    (["--d-model", "30"], "--d-model"),  # 4 heads
    (["--out", "FILE/a.json"], "--out"),
    (["--warmup", "-1"], "--warmup"),
]


@pytest.mark.parametrize(
    ("bad", "flag"), DISTRIBUTED_BAD, ids=[" ".join(b[0]) for b in DISTRIBUTED_BAD]
)
def test_distributed_bad_flag_exits_2_with_one_line(tmp_path, bad, flag):
    regular = tmp_path / "FILE"
    regular.write_text("not a directory\n")
    bad = [arg.replace("FILE", str(regular)) for arg in bad]
    done = run_benchmark("distributed", "--quick", "--out", str(tmp_path / "o" / "r.json"), *bad)
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("distributed.py: error: ") and flag in lines[0]
    assert done.stdout == "" and files_under(tmp_path) == [regular]


def test_distributed_quick_has_its_own_default_out(benchmark):
    distributed = benchmark("distributed")
    full, quick = distributed.parse([]), distributed.parse(["--quick", "--warmup", "2"])
    assert full.out.name == "distributed.json" and quick.out.name == "distributed.quick.json"
    assert (full.steps, full.warmup, full.processes) == (20, 3, [1, 2])
    assert (quick.steps, quick.warmup, quick.allreduce_repeats) == (3, 2, 3)  # given: wins
    spelled = distributed.parse(["--quick", "--steps=7"])
    assert (spelled.steps, spelled.warmup) == (7, 1)


@pytest.mark.slow
def test_distributed_measures_one_and_two_processes(tmp_path):
    out = tmp_path / "d.json"
    done = run_benchmark("distributed", "--quick", "--steps", "1", "--warmup", "0",
                         "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[:2000] + "\n...\n" + done.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["processes"], r["allreduce_ms"] is None) for r in rows] == [(1, True), (2, False)]
    assert all(r["tokens_per_s"] > 0 and r["step_ms"] > 0 for r in rows)
    assert rows[1]["parameters"] == rows[0]["parameters"] > 100_000
    # the cores are shared out: two processes get half the threads each
    assert rows[1]["threads_per_process"] == max(1, rows[0]["threads_per_process"] // 2)


def test_tiled_attention_reports_memory_growth_against_the_smallest_length(benchmark):
    tiled = benchmark("tiled_attention")
    measured = ((2048, 20.0, 400.0), (1024, 10.0, 100.0), (8192, 80.0, None))
    rows = [
        {"device": "cpu", "seq_len": t, "peak_mib": m, "ref_peak_mib": r} for t, m, r in measured
    ]
    tiled.memory_growth(rows)
    assert [r["memory_growth"] for r in rows] == [2.0, 1.0, 8.0]
    assert [r["ref_memory_growth"] for r in rows] == [4.0, 1.0, None]
    assert {r["growth_over_seq_len"] for r in rows} == {1024}


def test_generation_reports_tokens_per_second_and_their_ratio(benchmark):
    generation = benchmark("generation")
    row = {"seq_len": 512, "time_ms": 1000.0, "ref_time_ms": 8000.0}
    generation.BENCHMARK.finish_row(row, {"batch": 2})
    assert (row["tokens_per_s"], row["ref_tokens_per_s"]) == (1024.0, 128.0)
    assert row["tokens_per_s_ratio"] == 8.0


def test_kv_cache_reports_each_sides_cache_per_token(benchmark):
    kv_cache = benchmark("kv_cache")
    row = {"implementation_key": "gqa", "reference_key": "mha",
           "probe": {"cache_bytes_per_token": {"gqa": 4096.0, "mha": 16384.0}}}  # fmt: skip
    kv_cache.finish_row(row, {"n_head": 8})
    assert (row["cache_kib_per_token"], row["ref_cache_kib_per_token"]) == (4.0, 16.0)
    assert row["cache_ratio"] == 0.25 and (row["kv_heads"], row["ref_kv_heads"]) == (2, 8)
