"""The package's layers, as the README draws them, enforced on every import statement.

From the bottom: the shared parts (checks, IO, CLI helpers, the contract), the stages in
order, the analysis tooling (``transformer.inspect``), the language-model infrastructure
(``transformer.lm``), the experiments, and the teaching tooling (``transformer_teaching``).
A module may import its own layer's modules and anything below it, never above: a stage
imports only earlier stages and the shared parts. The core (everything below the
experiments) imports no plotting library.
"""

import ast
import re
import shutil
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
SHARED = {"transformer", "_checks", "io", "cli", "contract", "token_model"}
PLOTTING = ("matplotlib", "seaborn")


def layer_of(module: str) -> tuple[int, str]:
    """(rank, unit) of a module of ours: a lower rank is a lower layer; a unit is one stage
    or one package, inside which modules may import each other."""
    parts = module.split(".")
    if parts[0] == "transformer_teaching":
        return 1000, "transformer_teaching"
    name = parts[1] if len(parts) > 1 else "transformer"
    if name in SHARED:
        return 0, "shared"
    stage = re.fullmatch(r"v(\d+)_\w+", name)
    if stage:
        return int(stage[1]), name
    ranks = {"inspect": 50, "lm": 100, "experiments": 200}
    if name not in ranks:
        raise AssertionError(f"{module}: a module in no layer; add it to test_layering")
    return ranks[name], name


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every import in ``tree``, relative imports resolved."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module
            found.append((node.lineno, name))
    return found


def violations(root: Path) -> list[str]:
    """Every import under ``root`` that goes upward, or into plotting from the core."""
    problems = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        rank, unit = layer_of(module)
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target in imported(tree, module, path.name == "__init__.py"):
            where = f"{path.relative_to(root)}:{line}"
            if target.split(".")[0] in PLOTTING and rank < 200:
                problems.append(f"{where}: the core imports {target}")
            if target.split(".")[0] not in ("transformer", "transformer_teaching"):
                continue
            target_rank, target_unit = layer_of(target)
            if target_rank > rank or (target_rank == rank and target_unit != unit):
                problems.append(f"{where}: {module} imports {target}, a layer above or beside it")
    return problems


def test_nothing_imports_upward():
    assert violations(SRC) == []


def stage_imports(root: Path, package: str) -> list[str]:
    """Imports of a stage subpackage from the modules of ``package``."""
    found = []
    for path in sorted((root / "transformer" / package).rglob("*.py")):
        module = module_name(path, root)
        tree = ast.parse(path.read_text())
        for line, target in imported(tree, module, path.name == "__init__.py"):
            if re.match(r"transformer\.v\d+_", target):
                found.append(f"{path.relative_to(root)}:{line}: {target}")
    return found


def test_experiments_reach_stages_only_through_the_contract(tmp_path):
    """No experiment names a stage: each builds it with get_stage(version).build_model."""
    assert stage_imports(SRC, "experiments") == []
    root = tmp_path / "src"
    shutil.copytree(SRC, root, ignore=shutil.ignore_patterns("__pycache__"))
    runner = root / "transformer" / "experiments" / "runner.py"
    runner.write_text(runner.read_text() + "\nfrom transformer.v5_gpt import GPT\n")
    assert stage_imports(root, "experiments") == [
        f"transformer/experiments/runner.py:{len(runner.read_text().splitlines())}: "
        "transformer.v5_gpt"
    ]


def test_every_stage_and_layer_is_seen():
    """The check walks the real tree: every layer has modules in it."""
    units = {layer_of(module_name(p, SRC))[1] for p in SRC.rglob("*.py")}
    assert {"shared", "lm", "experiments", "transformer_teaching"} <= units
    assert {f"v{i}" for i in range(1, 6)} <= {u[:2] for u in units if u.startswith("v")}


def test_an_upward_import_is_caught(tmp_path):
    """Copy the tree, add one bad import per kind, and watch the check go red."""
    root = tmp_path / "src"
    shutil.copytree(SRC, root, ignore=shutil.ignore_patterns("__pycache__"))
    bad = {
        "transformer/v2_multihead/multihead.py": "from transformer.v4_block import block_for",
        "transformer/v5_gpt/gpt.py": "from transformer.lm import train",
        "transformer/contract.py": "import transformer.v1_basic_attention",
        "transformer/lm/training.py": "from transformer.experiments import plots",
        "transformer/experiments/runner.py": "from transformer_teaching import quotes",
        "transformer/v3_positional/encoding.py": "import matplotlib.pyplot",
    }
    assert violations(root) == []
    for file, line in bad.items():
        path = root / file
        path.write_text(path.read_text() + f"\n\ndef late():\n    {line}\n")
    found = violations(root)
    assert len(found) == len(bad), found
    for file in bad:
        assert any(problem.startswith(file) for problem in found), file
