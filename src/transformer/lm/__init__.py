"""Language-model infrastructure, for any stage: the corpus, the one training loop,
checkpoints and generation. Experiments train through it; stages never import it.
"""

from transformer.lm.checkpoint import (
    Checkpoint,
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from transformer.lm.corpus import (
    VOCAB_SIZE,
    Corpus,
    CorpusConfig,
    load_corpus,
    sample_batch,
    unigram_baseline,
)
from transformer.lm.generate import generate
from transformer.lm.training import (
    IGNORE_INDEX,
    History,
    TrainConfig,
    TrainingDiverged,
    TrainResult,
    learning_rate_at,
    next_token_loss,
    train,
)

__all__ = [
    "IGNORE_INDEX",
    "VOCAB_SIZE",
    "Checkpoint",
    "CheckpointError",
    "Corpus",
    "CorpusConfig",
    "History",
    "TrainConfig",
    "TrainResult",
    "TrainingDiverged",
    "generate",
    "learning_rate_at",
    "load_checkpoint",
    "load_corpus",
    "next_token_loss",
    "read_checkpoint",
    "sample_batch",
    "save_checkpoint",
    "train",
    "unigram_baseline",
]
