"""The full encoder-decoder of "Attention Is All You Need", a drop-in for ``nn.Transformer``.

The encoder is v4's stack of blocks, unchanged; the decoder is this stage's stack of
decoder blocks. Both end in a LayerNorm, as in PyTorch.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from transformer._checks import check_positive_int, check_rank, check_size, check_tensor
from transformer.v4_block import TransformerEncoder, TransformerEncoderLayer
from transformer.v6_encoder_decoder.decoder import TransformerDecoder
from transformer.v6_encoder_decoder.decoder_layer import TransformerDecoderLayer


class Transformer(nn.Module):
    """Encoder over ``src``, decoder over ``tgt`` that reads the encoder's output.

    Arguments are those of ``nn.Transformer``: ``custom_encoder`` / ``custom_decoder``
    replace the built stacks, and every parameter with two or more dimensions starts
    Xavier-uniform, as in PyTorch. One difference: in eval mode PyTorch's encoder may take a
    nested-tensor fast path that zeroes its output at padded source positions; this encoder
    computes them like any other, so pass ``memory_key_padding_mask`` with
    ``src_key_padding_mask`` (as a seq2seq model does) and the two agree.
    """

    def __init__(
        self,
        d_model: int = 512,
        nhead: int = 8,
        num_encoder_layers: int = 6,
        num_decoder_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        activation: str | Callable[[Tensor], Tensor] = "relu",
        custom_encoder: nn.Module | None = None,
        custom_decoder: nn.Module | None = None,
        layer_norm_eps: float = 1e-5,
        batch_first: bool = False,
        norm_first: bool = False,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        check_positive_int("d_model", d_model)
        layer = {
            "dim_feedforward": dim_feedforward, "dropout": dropout, "activation": activation,
            "layer_norm_eps": layer_norm_eps, "batch_first": batch_first,
            "norm_first": norm_first, "bias": bias, **factory,
        }  # fmt: skip
        for name, custom in (
            ("custom_encoder", custom_encoder),
            ("custom_decoder", custom_decoder),
        ):
            if custom is not None and not isinstance(custom, nn.Module):
                raise TypeError(f"{name}: expected None or an nn.Module, got {custom!r}")
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            check_positive_int("num_encoder_layers", num_encoder_layers)
            self.encoder = TransformerEncoder(
                TransformerEncoderLayer(d_model, nhead, **layer),
                num_encoder_layers,
                nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory),
            )
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            check_positive_int("num_decoder_layers", num_decoder_layers)
            self.decoder = TransformerDecoder(
                TransformerDecoderLayer(d_model, nhead, **layer),
                num_decoder_layers,
                nn.LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **factory),
            )
        self._reset_parameters()
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first

    def _reset_parameters(self) -> None:
        """PyTorch's initialisation: Xavier-uniform for every matrix."""
        for parameter in self.parameters():
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)

    def _check(self, src: Tensor, tgt: Tensor) -> None:
        layout = "(batch, seq_len, d_model)" if self.batch_first else "(seq_len, batch, d_model)"
        check_tensor("src", src)
        check_tensor("tgt", tgt)
        check_rank("src", src, (2, 3), f"{layout}, or unbatched (seq_len, d_model)")
        check_rank("tgt", tgt, (src.dim(),), f"{layout} with the rank of src ({src.dim()})")
        if src.dim() == 3:
            batch_dim = 0 if self.batch_first else 1
            check_size("tgt", tgt, batch_dim, src.shape[batch_dim], "batch, as in src")
        check_size("src", src, -1, self.d_model, "d_model")
        check_size("tgt", tgt, -1, self.d_model, "d_model")

    def forward(
        self,
        src: Tensor,
        tgt: Tensor,
        src_mask: Tensor | None = None,
        tgt_mask: Tensor | None = None,
        memory_mask: Tensor | None = None,
        src_key_padding_mask: Tensor | None = None,
        tgt_key_padding_mask: Tensor | None = None,
        memory_key_padding_mask: Tensor | None = None,
        src_is_causal: bool | None = None,
        tgt_is_causal: bool | None = None,
        memory_is_causal: bool = False,
    ) -> Tensor:
        """src (N, S, E) and tgt (N, T, E) with ``batch_first`` (else sequence first, or
        unbatched) -> the decoder's output, shaped like ``tgt``.

        The target must be masked causally for training (``tgt_mask`` from
        ``generate_square_subsequent_mask(T)``, or ``tgt_is_causal=True`` alone); the
        padding masks block padded positions of each sequence (True = blocked).
        """
        self._check(src, tgt)
        memory = self.encoder(
            src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal
        )  # like src
        return self.decoder(
            tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
            tgt_key_padding_mask=tgt_key_padding_mask,
            memory_key_padding_mask=memory_key_padding_mask,
            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal,
        )  # like tgt  # fmt: skip

    @staticmethod
    def generate_square_subsequent_mask(
        sz: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """The (sz, sz) causal mask: 0 on and below the diagonal, -inf above it; on the
        default device and in the default dtype unless given, as in PyTorch."""
        full = torch.full((sz, sz), float("-inf"), dtype=dtype, device=device)  # (sz, sz)
        return torch.triu(full, diagonal=1)  # (sz, sz)
