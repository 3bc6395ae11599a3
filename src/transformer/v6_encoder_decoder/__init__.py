"""v6_encoder_decoder: the original Transformer, an encoder and a decoder joined by cross-attention.

The decoder block adds one idea, cross-attention: queries from the target, keys and values
from the encoder's output. Drop-ins for ``nn.TransformerDecoderLayer``,
``nn.TransformerDecoder`` and ``nn.Transformer``; the encoder is v4's stack, attention v2's
and positions v3's, imported unchanged.
"""

from transformer.v6_encoder_decoder.decoder import TransformerDecoder
from transformer.v6_encoder_decoder.decoder_layer import TransformerDecoderLayer
from transformer.v6_encoder_decoder.decoding import (
    Hypothesis,
    beam_search,
    greedy_decode,
    length_penalty_factor,
    score_target,
)
from transformer.v6_encoder_decoder.model import SETTINGS, Seq2SeqTransformer, build_seq2seq_model
from transformer.v6_encoder_decoder.transformer import Transformer

__all__ = [
    "SETTINGS",
    "Hypothesis",
    "Seq2SeqTransformer",
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "beam_search",
    "build_seq2seq_model",
    "greedy_decode",
    "length_penalty_factor",
    "score_target",
]
