"""The stage contract: how experiments, benchmarks and lab checks build and read any stage.

* ``get_stage("v2")`` returns a :class:`Stage` (version, subpackage, one-line idea);
  ``list_stages()`` lists them in order. An unknown version raises :class:`UnknownStageError`,
  whose message lists the known ones.
* ``stage.build_model(ModelConfig(vocab_size=...))`` returns a :class:`SequenceModel`:
  ``model(tokens)`` maps token ids ``(batch, seq)`` to logits ``(batch, seq, vocab)``, on the
  stage's fastest path. ``model(tokens, return_attention=True)`` returns ``(logits, maps)``
  with one ``(batch, num_heads, seq, seq)`` tensor per layer: row ``i`` of head ``h`` is where
  query ``i`` looked.
* Each stage declares the settings it accepts (``stage.settings``): the ``ModelConfig``
  fields it uses and its own ``options``, each with a default and the values it takes. A
  field or option the stage would ignore is an error, and ``stage.architecture(config)``
  is what actually runs (v1 says ``num_heads: 1``), which results files record.

* Each stage records the kinds of task it can run (``stage.tasks``): ``"next-token"``
  (the pattern, Fibonacci and sequential experiments and the language model, where every
  position predicts the next token from the ones before it) and ``"seq2seq"`` (a target
  written from a source, ``experiments/seq2seq.py``). ``stage.require(task)`` raises
  :class:`UnsupportedTaskError` with the reason, and ``list_stages(task)`` lists the stages
  that can run it. v6, the encoder-decoder, is the one stage that is not a decoder-only
  language model: its ``build_seq2seq_model(config)`` takes the place of
  ``build_sequence_model``.

Adding a decoder-only stage means writing a subpackage whose ``__init__`` exposes
``SETTINGS`` and ``build_sequence_model(config) -> SequenceModel`` and adding one ``Stage``
line to ``_REGISTRY`` below; every experiment then runs it, with no change. The experiments
reach the stages through this contract only (``tests/test_layering.py``); the benchmarks,
tests, tutorials and learners' code import stages directly.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from transformer._checks import (
    check_bool,
    check_divisible,
    check_positive_int,
    check_probability,
    check_seq_len,
    check_token_ids,
)

FIELDS = ("d_model", "num_heads", "num_layers", "dropout", "causal", "max_len")


@dataclass(frozen=True)
class ModelConfig:
    """What to build. A field left as None takes the stage's default; ``options`` holds the
    stage's own settings (for example ``{"norm_first": True}`` for v4)."""

    vocab_size: int
    d_model: int | None = None
    num_heads: int | None = None
    num_layers: int | None = None
    dropout: float | None = None
    causal: bool | None = None  # each position sees only itself and earlier positions
    max_len: int | None = None  # longest sequence, for stages with positions
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_positive_int("vocab_size", self.vocab_size)
        for name in ("d_model", "num_heads", "num_layers", "max_len"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        if self.d_model is not None and self.num_heads is not None:
            check_divisible("d_model", self.d_model, "num_heads", self.num_heads)
        if self.dropout is not None:
            check_probability("dropout", self.dropout)
        if self.causal is not None:
            check_bool("causal", self.causal)
        if not isinstance(self.options, Mapping) or not all(
            isinstance(k, str) for k in self.options
        ):
            raise TypeError(f"options: expected a dict of str keys, got {self.options!r}")
        object.__setattr__(self, "options", dict(self.options))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def with_options(self, **options: Any) -> ModelConfig:
        """This config with the given options added (those passed as None are left out)."""
        chosen = {name: value for name, value in options.items() if value is not None}
        return dataclasses.replace(self, options={**self.options, **chosen})

    @classmethod
    def from_dict(cls, values: object) -> ModelConfig:
        """The inverse of ``to_dict``; an unknown key is an error."""
        known = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(values, dict) or not set(values) <= set(known):
            raise ValueError(f"values: expected a dict with keys from {known}, got {values!r}")
        return cls(**values)


@dataclass(frozen=True)
class Setting:
    """One thing a stage lets you choose: its default, and the values it takes.

    ``check(name, value)`` raises on a bad value; ``choices`` limits the values, and ``why``
    says why when a value outside them is refused. ``derive(resolved)``, when given, computes
    the value left unset from the other resolved settings (v7's key/value heads from
    ``num_heads``), so the architecture records the number that runs, not None.
    ``relate(name, value, resolved)``, when given, checks the value against the other
    settings (v7's key/value heads must divide ``num_heads``).
    """

    default: Any
    check: Callable[[str, Any], Any] | None = None
    choices: tuple | None = None
    why: str = ""
    derive: Callable[[dict[str, Any]], Any] | None = None
    relate: Callable[[str, Any, dict[str, Any]], None] | None = None

    def validate(self, name: str, value: Any, version: str) -> None:
        if self.choices is not None and value not in self.choices:
            allowed = " or ".join(repr(c) for c in self.choices)
            reason = f" ({self.why})" if self.why else ""
            raise ValueError(f"{name}: expected {allowed} for {version}{reason}, got {value!r}")
        if self.check is not None:
            self.check(name, value)


def optional_probability(name: str, value: Any) -> None:
    if value is not None:
        check_probability(name, value)


# The settings every stage shares; a stage's SETTINGS start from these.
BASE_SETTINGS: dict[str, Setting] = {
    "d_model": Setting(64, check_positive_int),
    "num_heads": Setting(4, check_positive_int),
    "num_layers": Setting(1, check_positive_int),
    "dropout": Setting(0.0, check_probability),
    "causal": Setting(True, check_bool),
}


class SequenceModel(nn.Module):
    """Token ids (batch, seq) -> logits (batch, seq, vocab_size), attention on request.

    Subclasses implement ``run(tokens, need_weights) -> (logits, maps or None)``; ``config``
    is the resolved ``ModelConfig`` (every field set).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config

    def check_tokens(self, tokens: Tensor) -> None:
        check_token_ids("tokens", tokens, self.config.vocab_size)
        if self.config.max_len is not None:
            hint = "build the model with a larger ModelConfig(max_len=...)"
            check_seq_len("tokens", tokens.shape[1], self.config.max_len, "max_len", hint)

    def run(self, tokens: Tensor, need_weights: bool) -> tuple[Tensor, list[Tensor] | None]:
        raise NotImplementedError

    def forward(
        self, tokens: Tensor, return_attention: bool = False
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        """tokens (B, T) -> logits (B, T, V); with ``return_attention``, also the maps."""
        self.check_tokens(tokens)
        logits, maps = self.run(tokens, need_weights=return_attention)  # (B, T, V)
        return (logits, maps) if return_attention else logits


class UnknownStageError(ValueError):
    """Raised for a version that is not registered; the message lists the known ones."""


class UnsupportedTaskError(ValueError):
    """Raised when a stage is asked to run a kind of task it cannot; the message says why."""


NEXT_TOKEN = "next-token"  # each position predicts the next token from those before it
SEQ2SEQ = "seq2seq"  # a target written from a whole source
TASKS = (NEXT_TOKEN, SEQ2SEQ)
DECODER_ONLY = {  # what a decoder-only stage can and cannot do
    NEXT_TOKEN: "",
    SEQ2SEQ: "the sequence-to-sequence experiment compares the encoder-decoder (v6) with the "
    "GPT-family decoders v5 and v7",
}


@dataclass(frozen=True)
class Stage:
    """A registered stage: its version, its subpackage, the one idea it adds, and for each
    kind of task in ``TASKS`` the reason it cannot run it ("" where it can)."""

    version: str
    module: str
    idea: str
    limits: Mapping[str, str] = field(default_factory=lambda: {NEXT_TOKEN: "", SEQ2SEQ: ""})

    @property
    def tasks(self) -> tuple[str, ...]:
        """The kinds of task this stage can run."""
        return tuple(task for task in TASKS if not self.limits[task])

    @property
    def encoder_decoder(self) -> bool:
        """Whether the stage is an encoder-decoder (it then cannot run next-token tasks)."""
        return hasattr(self.load(), "build_seq2seq_model")

    def require(self, task: str) -> None:
        """Raise :class:`UnsupportedTaskError`, with the reason, unless the stage runs ``task``."""
        if task not in TASKS:
            raise ValueError(f"task: expected one of {', '.join(TASKS)}, got {task!r}")
        if self.limits[task]:
            raise UnsupportedTaskError(
                f"{self.version} cannot run {task} tasks: {self.limits[task]}"
            )

    def load(self):
        """Import the stage's subpackage."""
        return importlib.import_module(self.module)

    @property
    def settings(self) -> dict[str, Setting]:
        """The ModelConfig fields and options this stage accepts, with their defaults."""
        return self.load().SETTINGS

    def accepts(self, name: str, value: Any) -> bool:
        """Whether ``name=value`` is a setting this stage takes."""
        setting = self.settings.get(name)
        if setting is None:
            return False
        try:
            setting.validate(name, value, self.version)
        except (TypeError, ValueError):
            return False
        return True

    def resolve(self, config: ModelConfig) -> ModelConfig:
        """``config`` with every unset field and option at the stage's default; a field or
        option that the stage does not use, or a value it cannot take, is an error."""
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config: expected a ModelConfig, got {type(config).__name__}")
        settings = self.settings
        names = ", ".join(settings)
        given = {name: getattr(config, name) for name in FIELDS} | config.options
        resolved = {}
        for name, value in given.items():
            if name not in settings:
                if value is None:
                    continue
                raise ValueError(
                    f"{name}: expected it unset, since {self.version} has no such setting and "
                    f"would ignore it, got {value!r}; {self.version}'s settings: {names}"
                )
            if value is not None:
                settings[name].validate(name, value, self.version)
        for name, setting in settings.items():
            value = given.get(name)
            resolved[name] = setting.default if value is None else value
        for name, setting in settings.items():
            if setting.derive is not None and resolved[name] is None:
                resolved[name] = setting.derive(resolved)
                setting.validate(name, resolved[name], self.version)
        for name, setting in settings.items():
            if setting.relate is not None:
                setting.relate(name, resolved[name], resolved)
        fields = {name: resolved.pop(name) for name in FIELDS if name in resolved}
        if "num_heads" in fields:
            check_divisible("d_model", fields["d_model"], "num_heads", fields["num_heads"])
        return ModelConfig(vocab_size=config.vocab_size, **fields, options=resolved)

    def architecture(self, config: ModelConfig) -> dict[str, Any]:
        """What runs: the vocabulary size and every setting of the stage, resolved."""
        resolved = self.resolve(config)
        fields = {name: getattr(resolved, name) for name in FIELDS if name in self.settings}
        return {"vocab_size": resolved.vocab_size, **fields, **resolved.options}

    def build_model(self, config: ModelConfig) -> SequenceModel:
        """The stage's token-in/logits-out model, built from the resolved ``config``."""
        self.require(NEXT_TOKEN)
        return self.load().build_sequence_model(self.resolve(config))

    def build_seq2seq_model(self, config: ModelConfig) -> nn.Module:
        """An encoder-decoder stage's model, built from the resolved ``config``:
        ``model(src, tgt_in)`` maps source ids (B, S) and decoder inputs (B, T) to logits
        (B, T, vocab), with ``encode``, ``decode``, ``greedy_decode``, ``beam_search`` and
        ``forward_with_attention``. A decoder-only stage raises: it reads a source as a
        prefix of one sequence, through ``build_model``."""
        if not self.encoder_decoder:
            raise UnsupportedTaskError(
                f"{self.version} is decoder-only: build it with build_model and give it the "
                "source as a prefix"
            )
        return self.load().build_seq2seq_model(self.resolve(config))


EARLY = DECODER_ONLY  # v1-v4 run the next-token tasks only

_REGISTRY: dict[str, Stage] = {
    stage.version: stage
    for stage in (
        Stage(
            "v1",
            "transformer.v1_basic_attention",
            "Scaled dot-product attention: each token takes a softmax(QKᵀ/√d_k)-weighted "
            "average of the values.",
            EARLY,
        ),
        Stage(
            "v2",
            "transformer.v2_multihead",
            "Multi-head attention: several heads attend in parallel, a drop-in for "
            "nn.MultiheadAttention.",
            EARLY,
        ),
        Stage(
            "v3",
            "transformer.v3_positional",
            "Positional encoding: a sinusoidal (or learned) vector per position is added to "
            "each token, so order is visible.",
            EARLY,
        ),
        Stage(
            "v4",
            "transformer.v4_block",
            "The transformer block: attention and feed-forward, each with residual, LayerNorm "
            "and dropout; N stacked.",
            EARLY,
        ),
        Stage(
            "v5",
            "transformer.v5_gpt",
            "GPT: a decoder-only stack of causal pre-norm blocks whose tied head predicts the next "
            "token; equals GPT-2.",
        ),
        Stage(
            "v6",
            "transformer.v6_encoder_decoder",
            "The encoder-decoder: a causal decoder reads the encoded source through "
            "cross-attention; equals nn.Transformer.",
            {
                NEXT_TOKEN: "its encoder sees the whole input at once, so on a next-token task "
                "it would read the answer; run experiments/seq2seq.py",
                SEQ2SEQ: "",
            },
        ),
        Stage(
            "v7",
            "transformer.v7_modern",
            "The modern decoder: GPT with RoPE, RMSNorm, SwiGLU and grouped-query attention, "
            "each a switch; equals Llama.",
        ),
    )
}


def list_stages(task: str | None = None) -> list[Stage]:
    """Every registered stage in order, or those that can run ``task`` (see ``TASKS``)."""
    if task is not None and task not in TASKS:
        raise ValueError(f"task: expected None or one of {', '.join(TASKS)}, got {task!r}")
    return [s for s in _REGISTRY.values() if task is None or task in s.tasks]


def get_stage(version: object) -> Stage:
    """The stage registered as ``version`` (for example ``"v2"``)."""
    if not isinstance(version, str) or version not in _REGISTRY:
        known = ", ".join(_REGISTRY)
        raise UnknownStageError(f"version: unknown stage {version!r}; known stages: {known}")
    return _REGISTRY[version]
