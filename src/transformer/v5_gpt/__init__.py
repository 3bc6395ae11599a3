"""v5_gpt: GPT, a decoder-only language model: v4's pre-norm blocks, causal, with a tied head.

Token and learned position embeddings (v3's), N causal pre-norm blocks (v4's, configured
with GELU and GPT-2's dropouts), a final LayerNorm and a head that reuses the token
embedding. Numerically equal to Hugging Face's ``GPT2LMHeadModel``; weights convert both
ways and GPT-2 checkpoints load offline. Training it is ``transformer.lm``'s job.
"""

from transformer.v5_gpt.block import gelu_tanh, gpt_block
from transformer.v5_gpt.config import GPTConfig
from transformer.v5_gpt.decoder import DecoderLM
from transformer.v5_gpt.gpt import GPT
from transformer.v5_gpt.hf import from_hf_gpt2, from_hf_state_dict, to_hf_state_dict
from transformer.v5_gpt.model import SETTINGS, GPTSequenceModel, build_sequence_model, gpt_config
from transformer.v5_gpt.pretrained import (
    CheckpointFolderError,
    load_gpt2_checkpoint,
    save_gpt2_checkpoint,
)
from transformer.v5_gpt.sampling import next_token

# Language-model infrastructure that lived here; a stage may not import it (layering).
MOVED = {
    "CheckpointError": "transformer.lm",
    "CorpusConfig": "transformer.lm",
    "TrainConfig": "transformer.lm",
    "learning_rate_at": "transformer.lm",
    "load_checkpoint": "transformer.lm",
    "load_corpus": "transformer.lm",
    "save_checkpoint": "transformer.lm",
    "train": "transformer.lm",
    "unigram_baseline": "transformer.lm",
}


def __getattr__(name: str):
    if name in MOVED:  # ImportError, so that "from transformer.v5_gpt import train" shows it
        raise ImportError(
            f"transformer.v5_gpt.{name} moved to {MOVED[name]}: "
            f"use 'from {MOVED[name]} import {name}'"
        )
    raise AttributeError(f"module 'transformer.v5_gpt' has no attribute {name!r}")


__all__ = [
    "GPT",
    "CheckpointFolderError",
    "DecoderLM",
    "SETTINGS",
    "GPTConfig",
    "GPTSequenceModel",
    "build_sequence_model",
    "from_hf_gpt2",
    "from_hf_state_dict",
    "gelu_tanh",
    "gpt_block",
    "gpt_config",
    "load_gpt2_checkpoint",
    "next_token",
    "save_gpt2_checkpoint",
    "to_hf_state_dict",
]
