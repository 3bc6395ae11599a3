"""Checks for the labs in ``tutorials/labs``, where learners implement attention themselves.

Each ``labNN`` module holds check functions that take the learner's implementation and raise
:class:`LabCheckFailure` (an ``AssertionError``) naming the likely mistake, with the maximum
absolute error and where it occurs:

* ``lab01.check_attention``: scaled dot-product attention with v1's mask (1 = attend).
* ``lab02.check_attention_maps``, ``lab02.check_plot_attention``: reading and drawing
  attention through the stage contract.
* ``lab03.check_split_heads``, ``check_merge_heads``, ``check_multihead``: multi-head attention.
* ``lab04.check_to_torch_mask``, ``check_load_from_torch``, ``check_matches_torch``:
  v1's multi-head attention against ``torch.nn.MultiheadAttention``.
* ``lab05.check_sinusoidal_encoding``, ``check_positional_encoding``, ``check_order_aware``:
  the sinusoidal table, adding it to embeddings, and a model that learns order with it.
* ``lab06.check_feed_forward``, ``check_post_norm``, ``check_pre_norm``: the transformer
  block against ``torch.nn.TransformerEncoderLayer``.
* ``lab07.check_rope_frequencies``, ``check_rotate_half``, ``check_rope``, ``check_rmsnorm``:
  rotary position embeddings (half-split pairing) and RMSNorm against
  ``transformer.v7_modern`` and ``torch.nn.RMSNorm``.
* ``lab08.check_cross_attention``, ``check_decoder_block``: cross-attention and the decoder
  block against ``torch.nn.MultiheadAttention`` and ``torch.nn.TransformerDecoderLayer``.
* ``lab09.check_block``, ``check_gpt``, ``check_generate``: a GPT of the learner's own
  against Hugging Face's GPT-2 built offline.
* ``lab10.check_online_softmax_attention``, ``check_cached_decode_step``: attention in key
  blocks with the online softmax against SDPA, and one cached decoding step with RoPE
  against full causal attention over the prefix.

Solutions: labs 01 and 03 are ``transformer.v1_basic_attention``, lab 05 is
``transformer.v3_positional``, lab 06 ``transformer.v4_block`` and lab 07
``transformer.v7_modern`` (its ``rope`` is ``solutions.rope``), lab 08
``transformer.v6_encoder_decoder`` (its ``cross_attention`` is ``solutions.cross_attention``),
lab 10's blocked attention ``transformer.v8_efficient.tiled_attention``;
labs 02 and 04 are
``transformer_teaching.labs.solutions``.
"""

from transformer_teaching.labs.checks import LabCheckFailure, load_learner_module

__all__ = ["LabCheckFailure", "load_learner_module"]
