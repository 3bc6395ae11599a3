"""transformer: learn the transformer by building it in stages.

Each stage is a subpackage (``transformer.v1_basic_attention``, ``transformer.v2_multihead``,
...) that adds one idea to the stage before it. ``get_stage`` and ``ModelConfig`` are the
contract through which experiments and benchmarks use any stage; see ``transformer.contract``.
"""

from transformer.contract import (
    NEXT_TOKEN,
    SEQ2SEQ,
    ModelConfig,
    SequenceModel,
    Stage,
    UnknownStageError,
    UnsupportedTaskError,
    get_stage,
    list_stages,
)

__all__ = [
    "NEXT_TOKEN",
    "SEQ2SEQ",
    "ModelConfig",
    "SequenceModel",
    "Stage",
    "UnknownStageError",
    "UnsupportedTaskError",
    "get_stage",
    "list_stages",
]
