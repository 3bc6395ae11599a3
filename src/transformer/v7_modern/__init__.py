"""v7_modern: the decoder that changed since GPT-2, four switches on v5.

* ``positions="rope"``: rotary position embeddings rotate q and k instead of adding learned
  vectors to the input (``rope.py``);
* ``norm="rmsnorm"``: RMSNorm instead of LayerNorm (``norm.py``);
* ``mlp="swiglu"``: a gated SiLU feed-forward instead of GELU (``feed_forward.py``);
* ``n_kv_head < n_head``: grouped-query attention, query heads sharing key/value heads
  (``attention.py``).

All switches at GPT-2's settings (``ModernConfig``'s defaults) compute v5 exactly and load
its state dicts (``from_gpt``); all at Llama's (``ModernConfig.llama``) compute Hugging
Face's ``LlamaForCausalLM``, whose weights convert both ways (``llama.py``). Everything else
(embeddings, learned positions, the attention core, the initialisation, sampling) is
imported from earlier stages.
"""

from transformer.v7_modern.attention import GroupedQueryAttention, repeat_kv
from transformer.v7_modern.block import ModernBlock
from transformer.v7_modern.config import MLPS, NORMS, POSITIONS, ModernConfig, swiglu_hidden_dim
from transformer.v7_modern.feed_forward import GELUFeedForward, SwiGLU, make_feed_forward
from transformer.v7_modern.model import ModernGPT
from transformer.v7_modern.norm import RMSNorm, make_norm
from transformer.v7_modern.pretrained import load_llama_checkpoint, save_llama_checkpoint
from transformer.v7_modern.rope import RotaryEmbedding, apply_rope, rope_frequencies, rotate_half
from transformer.v7_modern.sequence_model import (
    SETTINGS,
    ModernSequenceModel,
    build_sequence_model,
    modern_config,
)
from transformer.v7_modern.v5 import from_gpt, from_v5_state_dict, to_v5_state_dict

__all__ = [
    "MLPS",
    "NORMS",
    "POSITIONS",
    "SETTINGS",
    "GELUFeedForward",
    "GroupedQueryAttention",
    "ModernBlock",
    "ModernConfig",
    "ModernGPT",
    "ModernSequenceModel",
    "RMSNorm",
    "RotaryEmbedding",
    "SwiGLU",
    "apply_rope",
    "build_sequence_model",
    "from_gpt",
    "from_v5_state_dict",
    "load_llama_checkpoint",
    "make_feed_forward",
    "make_norm",
    "modern_config",
    "repeat_kv",
    "rope_frequencies",
    "rotate_half",
    "save_llama_checkpoint",
    "swiglu_hidden_dim",
    "to_v5_state_dict",
]
