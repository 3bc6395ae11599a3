"""The numbers tutorial 07 quotes for v7's two equalities, measured on random tiny models.

* **Reduction:** v7 with every switch at GPT-2's setting, holding a v5 GPT's weights,
  against that GPT.
* **Llama:** v7 with every switch at Llama's setting, holding the weights of Hugging Face's
  ``LlamaForCausalLM`` (a random tiny config, built offline), against it; also greedy tokens
  against its ``generate(do_sample=False)``. Needs ``transformers`` (a development
  dependency: ``poetry install`` brings it).

    poetry run python -m transformer_teaching.equivalence OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from transformer.io import write_json
from transformer.v5_gpt import GPT, GPTConfig
from transformer.v7_modern import from_gpt
from transformer.v7_modern.llama import config_from_hf, from_hf_state_dict

CONFIGS = 12
SEED = 0


def random_sizes(generator: torch.Generator) -> dict:
    def pick(low: int, high: int) -> int:
        return int(torch.randint(low, high + 1, (1,), generator=generator))

    heads = (1, 2, 4)[pick(0, 2)]
    return {"heads": heads, "head_dim": 2 * pick(1, 4), "layers": pick(1, 3),
            "vocab": pick(5, 61), "seq": pick(1, 12)}  # fmt: skip


@torch.no_grad()
def reduction(generator: torch.Generator) -> dict:
    worst = 0.0
    for _ in range(CONFIGS):
        s = random_sizes(generator)
        width = s["heads"] * s["head_dim"]
        config = GPTConfig(s["vocab"], 12, width, n_layer=s["layers"], n_head=s["heads"])
        gpt = GPT(config).eval()
        tokens = torch.randint(0, s["vocab"], (3, s["seq"]), generator=generator)
        worst = max(worst, (from_gpt(gpt).eval()(tokens) - gpt(tokens)).abs().max().item())
    return {"configs": CONFIGS, "max_abs_logit_difference": worst}


@torch.no_grad()
def llama(generator: torch.Generator) -> dict:
    from transformers import LlamaConfig, LlamaForCausalLM

    worst, same_tokens = 0.0, 0
    for index in range(CONFIGS):
        s = random_sizes(generator)
        kv_heads = (s["heads"], max(1, s["heads"] // 2), 1)[index % 3]
        config = LlamaConfig(
            vocab_size=s["vocab"],
            hidden_size=s["heads"] * s["head_dim"],
            intermediate_size=3 * s["head_dim"] + 1,
            num_hidden_layers=s["layers"],
            num_attention_heads=s["heads"],
            num_key_value_heads=kv_heads,
            max_position_embeddings=32,
            rope_theta=(10000.0, 500.0, 1e6)[index % 3],
            tie_word_embeddings=index % 2 == 0,
            bos_token_id=None,
            eos_token_id=None,
        )  # fmt: skip  (no end-of-sequence token: generate never stops early)
        reference = LlamaForCausalLM(config).eval()
        ours = from_hf_state_dict(reference.state_dict(), config_from_hf(config.to_dict())).eval()
        tokens = torch.randint(0, s["vocab"], (3, s["seq"]), generator=generator)
        worst = max(worst, (ours(tokens) - reference(tokens).logits).abs().max().item())
        greedy = reference.generate(
            tokens, attention_mask=torch.ones_like(tokens), max_new_tokens=8, do_sample=False
        )  # an explicit mask: with a pad_token_id, HF would mask every token equal to it
        same_tokens += int(torch.equal(greedy, ours.generate(tokens, 8, temperature=0)))
    return {"configs": CONFIGS, "max_abs_logit_difference": worst, "greedy_same": same_tokens}


def save(out: Path) -> Path:
    """Measure both equalities and write ``out/equivalence.json``."""
    torch.manual_seed(SEED)
    generator = torch.Generator().manual_seed(SEED)
    path = out / "equivalence.json"
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, {"seed": SEED, "reduction_to_v5": reduction(generator),
                      "llama": llama(generator)})  # fmt: skip
    return path


if __name__ == "__main__":
    print(f"wrote {save(Path(sys.argv[1]))}")
