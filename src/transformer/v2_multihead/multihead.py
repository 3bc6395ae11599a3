"""Multi-head attention as a drop-in replacement for ``torch.nn.MultiheadAttention``.

Same constructor arguments, forward signature, mask semantics and parameter names, so
state dicts load both ways. The heads' computation is written out step by step:
project, split into heads, attend, merge, project out.

Masks follow PyTorch here (True = blocked, floats are added), the opposite of v1 (1 = attend).
Fully blocked rows get zero weights and a zero attention output (so the result is
``out_proj.bias``) on every path. PyTorch itself is inconsistent there: NaN with
``need_weights=True`` or on its inference fast path, zeros with ``need_weights=False``.

``is_causal`` is a hint, as in PyTorch: ``attn_mask`` must be given and is what we apply.
PyTorch, with ``need_weights=False`` and no ``key_padding_mask``, swaps ``attn_mask`` for
SDPA's own causal mask, which also blocks the extra ``bias_k``/zero-attention keys; with
those options it then disagrees with its own ``need_weights=True`` result. We do not copy that.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from transformer._checks import (
    check_divisible,
    check_floating,
    check_positive_int,
    check_probability,
    check_rank,
    check_same_dtype,
    check_size,
    shape_str,
)
from transformer.v1_basic_attention import (
    attend,
    causal_bias,
    merge_heads,
    split_heads,
)
from transformer.v2_multihead.masks import attention_bias


class MultiHeadAttention(nn.Module):
    """``num_heads`` attention heads in parallel, with the API of ``nn.MultiheadAttention``.

    Inputs are (seq, batch, feature), or (batch, seq, feature) with ``batch_first=True``, or
    unbatched (seq, feature). Returns ``(output, weights)``: output like ``query`` with
    ``embed_dim`` features; weights (batch, L, S) averaged over heads, (batch, num_heads, L, S)
    with ``average_attn_weights=False``, or None with ``need_weights=False``.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: int | None = None,
        vdim: int | None = None,
        batch_first: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        check_positive_int("embed_dim", embed_dim)
        check_positive_int("num_heads", num_heads)
        check_divisible("embed_dim", embed_dim, "num_heads", num_heads)
        self.embed_dim = embed_dim
        self.kdim = embed_dim if kdim is None else check_positive_int("kdim", kdim)
        self.vdim = embed_dim if vdim is None else check_positive_int("vdim", vdim)
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = check_probability("dropout", dropout)
        self.batch_first = batch_first
        self.add_zero_attn = add_zero_attn

        if self._qkv_same_embed_dim:  # one packed (3E, E) matrix, as PyTorch stores it
            self.in_proj_weight = nn.Parameter(torch.empty(3 * embed_dim, embed_dim, **factory))
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(embed_dim, embed_dim, **factory))
            self.k_proj_weight = nn.Parameter(torch.empty(embed_dim, self.kdim, **factory))
            self.v_proj_weight = nn.Parameter(torch.empty(embed_dim, self.vdim, **factory))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dim, **factory))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias, **factory)
        if add_bias_kv:
            self.bias_k = nn.Parameter(torch.empty(1, 1, embed_dim, **factory))
            self.bias_v = nn.Parameter(torch.empty(1, 1, embed_dim, **factory))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        """PyTorch's initialisation: Xavier for the projections, zero biases."""
        if self._qkv_same_embed_dim:
            nn.init.xavier_uniform_(self.in_proj_weight)
        else:
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                nn.init.xavier_uniform_(weight)
        if self.in_proj_bias is not None:
            nn.init.constant_(self.in_proj_bias, 0.0)
            nn.init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            nn.init.xavier_normal_(self.bias_k)
            nn.init.xavier_normal_(self.bias_v)

    def _check_inputs(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        """Validate shapes and dtypes; return whether the inputs are batched."""
        layout = "(batch, seq_len, feature)" if self.batch_first else "(seq_len, batch, feature)"
        check_rank("query", query, (2, 3), f"{layout}, or unbatched (seq_len, feature)")
        batched = query.dim() == 3
        batch_dim = 0 if self.batch_first else 1
        seq_dim = batch_dim ^ 1 if batched else 0
        features = (
            ("query", query, self.embed_dim, "embed_dim"),
            ("key", key, self.kdim, "kdim"),
            ("value", value, self.vdim, "vdim"),
        )
        for name, t, size, what in features:
            check_rank(name, t, (query.dim(),), f"like query {shape_str(query.shape)}")
            check_floating(name, t)
            check_same_dtype(name, t, self.out_proj.weight.dtype, "the module's parameter dtype")
            check_size(name, t, -1, size, what)
            if batched:
                check_size(name, t, batch_dim, query.shape[batch_dim], "batch, as in query")
        check_size("value", value, seq_dim, key.shape[seq_dim], "src_len, as in key")
        return batched

    def _project(self, query: Tensor, key: Tensor, value: Tensor) -> tuple[Tensor, ...]:
        """Input projections; the packed weight is split into its q, k and v rows.

        Self-attention (one tensor for all three) takes one (3E, E) matmul, as PyTorch does.
        """
        if self._qkv_same_embed_dim and query is key and key is value:
            return F.linear(query, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)  # 3 x (E, E)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q = b_k = b_v = None
        if self.in_proj_bias is not None:
            b_q, b_k, b_v = self.in_proj_bias.chunk(3)  # 3 x (E,)
        return F.linear(query, w_q, b_q), F.linear(key, w_k, b_k), F.linear(value, w_v, b_v)

    def attend(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        bias: Tensor | None = None,
        *,
        causal: bool = False,
        need_weights: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """The heads' computation on batch-first tensors, without the drop-in's API rules.

        query (N, L, E), key (N, S, kdim), value (N, S, vdim); ``bias`` additive, broadcastable
        to (N, H, L, S); ``causal=True`` lets query i see keys <= i (on the fused path no mask
        is built). Returns output (N, L, E) and per-head weights (N, H, L, S') or None, where
        S' counts the ``add_bias_kv``/``add_zero_attn`` keys.
        """
        batch, tgt_len, src_len = query.shape[0], query.shape[1], key.shape[1]
        heads, head_dim = self.num_heads, self.head_dim
        # 1. project
        q, k, v = self._project(query, key, value)  # (N, L, E), (N, S, E), (N, S, E)
        extra_keys = 0
        if self.bias_k is not None:  # one learned key/value appended to every sequence
            k = torch.cat([k, self.bias_k.expand(batch, 1, -1)], dim=1)  # (N, S+1, E)
            v = torch.cat([v, self.bias_v.expand(batch, 1, -1)], dim=1)  # (N, S+1, E)
            extra_keys += 1
        # 2. split into heads
        q = split_heads(q, heads)  # (N, H, L, D)
        k = split_heads(k, heads)  # (N, H, S', D)
        v = split_heads(v, heads)  # (N, H, S', D)
        if self.add_zero_attn:  # one all-zero key/value per head
            zeros = k.new_zeros(batch, heads, 1, head_dim)  # (N, H, 1, D)
            k = torch.cat([k, zeros], dim=2)  # (N, H, S'+1, D)
            v = torch.cat([v, zeros], dim=2)  # (N, H, S'+1, D)
            extra_keys += 1
        if extra_keys:  # the extra keys are never blocked, not even by the causal mask
            if causal:
                causal_part = causal_bias(tgt_len, src_len, q.dtype, q.device)  # (L, S)
                bias, causal = causal_part if bias is None else bias + causal_part, False
            if bias is not None:
                bias = F.pad(bias, (0, extra_keys))  # (.., L, S')
        # 3. attend: the explicit path when weights are wanted, the fused kernel otherwise
        dropout_p = self.dropout if self.training else 0.0
        attended, weights = attend(
            q, k, v, bias, causal=causal, dropout_p=dropout_p, need_weights=need_weights
        )  # (N, H, L, D), (N, H, L, S') or None
        # 4. merge heads, 5. project out
        return self.out_proj(merge_heads(attended)), weights  # (N, L, E), (N, H, L, S')

    def self_attend(
        self, x: Tensor, *, causal: bool, need_weights: bool
    ) -> tuple[Tensor, Tensor | None]:
        """x (N, T, E) attends to itself -> (N, T, E), weights (N, H, T, T) or None."""
        return self.attend(x, x, x, causal=causal, need_weights=need_weights)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        key_padding_mask: Tensor | None = None,
        need_weights: bool = True,
        attn_mask: Tensor | None = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> tuple[Tensor, Tensor | None]:
        """``nn.MultiheadAttention.forward``: its layouts, masks and rules, then ``attend``."""
        batched = self._check_inputs(query, key, value)
        if is_causal and attn_mask is None:
            raise ValueError(
                "is_causal: as in nn.MultiheadAttention, is_causal=True is only a hint that "
                "attn_mask is causal; expected attn_mask to be given, got None "
                "(build one with nn.Transformer.generate_square_subsequent_mask(seq_len))"
            )
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        elif not self.batch_first:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        bias = attention_bias(
            attn_mask,
            key_padding_mask,
            batch=query.shape[0],
            num_heads=self.num_heads,
            tgt_len=query.shape[1],
            src_len=key.shape[1],
            batched=batched,
            dtype=query.dtype,
        )  # (N or 1, H or 1, L, S) or None
        output, weights = self.attend(query, key, value, bias, need_weights=need_weights)
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)  # (N, L, S')
        if not batched:
            output = output.squeeze(0)  # (L, E)
            weights = None if weights is None else weights.squeeze(0)  # (L, S') or (H, L, S')
        elif not self.batch_first:
            output = output.transpose(0, 1)  # (L, N, E)
        return output, weights
