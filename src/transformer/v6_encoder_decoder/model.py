"""v6's sequence-to-sequence model: embeddings and sinusoidal positions around the Transformer.

    source ids -> embed x √d_model + positions -> encoder -> memory
    target ids -> embed x √d_model + positions -> decoder (reads memory) -> head -> logits

The decoder is causal (each target position sees itself and earlier ones); the encoder
sees its whole source. Padded source positions (``pad_id``) are blocked for both.
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from transformer._checks import (
    check_bool,
    check_positive_int,
    check_seq_len,
    check_size,
    check_token_ids,
)
from transformer.contract import ModelConfig, Setting, get_stage
from transformer.v3_positional import positions_for
from transformer.v4_block import SETTINGS as V4_SETTINGS
from transformer.v6_encoder_decoder import decoding
from transformer.v6_encoder_decoder.transformer import Transformer


def check_pad_id(name: str, value: object) -> None:
    """A token id >= 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}: expected a token id >= 0, got {value!r}")


SETTINGS = {name: s for name, s in V4_SETTINGS.items() if name != "causal"} | {
    # the encoder sees everything and the decoder is causal: there is no causal switch
    "num_layers": Setting(2, check_positive_int),  # encoder layers, and as many decoder layers
    "scale_embeddings": Setting(True, check_bool),  # the paper's √d_model
    "tie_embeddings": Setting(True, check_bool),  # NEW: one table for source, target and head
    "pad_id": Setting(0, check_pad_id),  # NEW: the token that pads a source, never attended to
}


class Seq2SeqTransformer(nn.Module):
    """Source ids (B, S) and decoder input ids (B, T) -> next-target logits (B, T, vocab).

    With ``tie_embeddings`` (the paper's choice) the source embedding, the target
    embedding and the output head share one (vocab, d_model) matrix, initialised
    N(0, 1/d_model) so that the √d_model-scaled embeddings have unit size, like the
    sinusoids they are added to. ``num_layers`` encoder and ``num_layers`` decoder layers.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config = get_stage("v6").resolve(config)
        self.config = config
        options = config.options
        d_model, vocab = config.d_model, config.vocab_size
        self.transformer = Transformer(
            d_model, config.num_heads, config.num_layers, config.num_layers,
            dim_feedforward=options["ff_multiplier"] * d_model, dropout=config.dropout,
            activation=options["activation"], batch_first=True, norm_first=options["norm_first"],
        )  # fmt: skip
        self.embed = nn.Embedding(vocab, d_model)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)
        self.target_embed = (
            self.embed if options["tie_embeddings"] else nn.Embedding(vocab, d_model)
        )
        self.head = nn.Linear(d_model, vocab, bias=False)
        if options["tie_embeddings"]:
            self.head.weight = self.embed.weight  # (vocab, d_model), shared
        self.positions = positions_for(config)
        self.dropout = nn.Dropout(config.dropout)
        self.scale = math.sqrt(d_model) if options["scale_embeddings"] else 1.0

    def _check(self, name: str, tokens: Tensor) -> None:
        check_token_ids(name, tokens, self.config.vocab_size)
        hint = "build the model with a larger ModelConfig(max_len=...)"
        check_seq_len(name, tokens.shape[1], self.config.max_len, "max_len", hint)

    def _vectors(self, embed: nn.Embedding, tokens: Tensor) -> Tensor:
        return self.dropout(self.positions(embed(tokens) * self.scale))  # (B, T, d_model)

    def source_padding(self, src: Tensor) -> Tensor | None:
        """True at padded source positions (B, S): the encoder and cross-attention skip them."""
        return src == self.config.options["pad_id"]  # (B, S)

    def encode(self, src: Tensor) -> tuple[Tensor, Tensor | None]:
        """src (B, S) -> memory (B, S, d_model) and the source padding (B, S) or None."""
        self._check("src", src)
        padding = self.source_padding(src)  # (B, S) or None
        memory = self.transformer.encoder(
            self._vectors(self.embed, src), src_key_padding_mask=padding
        )
        return memory, padding  # (B, S, d_model)

    def decode(self, memory: Tensor, padding: Tensor | None, tgt: Tensor) -> Tensor:
        """Decoder input ids (B, T) reading ``memory`` -> logits (B, T, vocab)."""
        self._check("tgt", tgt)
        check_size("tgt", tgt, 0, memory.shape[0], "batch, as in src")
        x = self.transformer.decoder(
            self._vectors(self.target_embed, tgt), memory, tgt_is_causal=True,
            memory_key_padding_mask=padding,
        )  # (B, T, d_model)  # fmt: skip
        return self.head(x)  # (B, T, vocab)

    def forward(self, src: Tensor, tgt: Tensor) -> Tensor:
        """src (B, S), tgt (B, T) -> logits (B, T, vocab): position t predicts target t + 1."""
        memory, padding = self.encode(src)
        return self.decode(memory, padding, tgt)

    def forward_with_attention(self, src: Tensor, tgt: Tensor) -> tuple[Tensor, dict]:
        """Logits and every attention map per head: ``{"encoder": L x (B, H, S, S),
        "decoder": L x (B, H, T, T), "cross": L x (B, H, T, S)}``."""
        self._check("src", src)
        self._check("tgt", tgt)
        check_size("tgt", tgt, 0, src.shape[0], "batch, as in src")
        padding = self.source_padding(src)
        memory, encoder_maps = self.transformer.encoder.forward_with_attention(
            self._vectors(self.embed, src), src_key_padding_mask=padding
        )  # (B, S, d_model)
        x, decoder_maps, cross_maps = self.transformer.decoder.forward_with_attention(
            self._vectors(self.target_embed, tgt), memory, tgt_is_causal=True,
            memory_key_padding_mask=padding,
        )  # (B, T, d_model)  # fmt: skip
        maps = {"encoder": encoder_maps, "decoder": decoder_maps, "cross": cross_maps}
        return self.head(x), maps

    def greedy_decode(self, src: Tensor, **kwargs) -> list[list[int]]:
        """``decoding.greedy_decode`` with this model: src (B, S) -> B lists of ids."""
        return decoding.greedy_decode(self, src, **kwargs)

    def beam_search(self, src: Tensor, **kwargs) -> decoding.Hypothesis:
        """``decoding.beam_search`` with this model: src (1, S) -> the best hypothesis."""
        return decoding.beam_search(self, src, **kwargs)

    def num_parameters(self) -> int:
        """Trainable parameters, a tied matrix counted once."""
        return sum(p.numel() for p in self.parameters())


def build_seq2seq_model(config: ModelConfig) -> Seq2SeqTransformer:
    """The stage contract's entry point for v6: a resolved config -> the seq2seq model."""
    return Seq2SeqTransformer(config)
