"""Golden tests: every stage (v1-v5, v7) is frozen. A change to its numbers fails here.

If the change is deliberate, regenerate with ``poetry run python -m tests.golden.cases vN``
and say why in the commit.
"""

import pytest
import torch

from tests.golden.cases import GOLDEN, path


@pytest.mark.parametrize("version", sorted(GOLDEN))
def test_stage_reproduces_stored_values(version):
    stored = torch.load(path(version), weights_only=True)
    fresh = GOLDEN[version]()
    assert sorted(fresh) == sorted(stored)
    for name, expected in stored.items():
        torch.testing.assert_close(
            fresh[name],
            expected,
            atol=1e-6,
            rtol=1e-6,
            msg=lambda m, name=name: f"{version} golden {name}: {m}",
        )
