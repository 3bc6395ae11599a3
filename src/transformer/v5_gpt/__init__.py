"""v5_gpt: GPT, a decoder-only language model: v4's pre-norm blocks, causal, with a tied head.

Token and learned position embeddings (v3's), N causal pre-norm blocks (v4's, with GELU),
a final LayerNorm and a head that reuses the token embedding. Numerically equal to Hugging
Face's ``GPT2LMHeadModel``; weights convert both ways and GPT-2 checkpoints load offline.
"""

from transformer.v5_gpt.block import GPTBlock, gelu_tanh
from transformer.v5_gpt.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from transformer.v5_gpt.config import GPTConfig
from transformer.v5_gpt.data import CorpusConfig, load_corpus, unigram_baseline
from transformer.v5_gpt.gpt import GPT
from transformer.v5_gpt.hf import from_hf_gpt2, from_hf_state_dict, to_hf_state_dict
from transformer.v5_gpt.model import GPTSequenceModel, build_sequence_model
from transformer.v5_gpt.pretrained import load_gpt2_checkpoint, save_gpt2_checkpoint
from transformer.v5_gpt.sampling import next_token
from transformer.v5_gpt.training import TrainConfig, learning_rate_at, train

__all__ = [
    "GPT",
    "CheckpointError",
    "CorpusConfig",
    "GPTBlock",
    "GPTConfig",
    "TrainConfig",
    "GPTSequenceModel",
    "build_sequence_model",
    "from_hf_gpt2",
    "from_hf_state_dict",
    "gelu_tanh",
    "learning_rate_at",
    "load_checkpoint",
    "load_corpus",
    "load_gpt2_checkpoint",
    "next_token",
    "save_checkpoint",
    "save_gpt2_checkpoint",
    "to_hf_state_dict",
    "train",
    "unigram_baseline",
]
