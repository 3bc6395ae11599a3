"""The lock file installs one version of each package."""

import collections
import tomllib
from pathlib import Path

LOCK = Path(__file__).resolve().parents[1] / "poetry.lock"


def test_lock_has_one_version_of_each_package():
    """Two locked versions of one package install over each other's files (seen with
    nvidia-cublas: a half-replaced library made `import torch` crash)."""
    packages = tomllib.loads(LOCK.read_text())["package"]
    versions = collections.defaultdict(set)
    for package in packages:
        versions[package["name"]].add(package["version"])
    assert {name: v for name, v in versions.items() if len(v) > 1} == {}
