"""An EAGLE draft head for the tiny model, trained here by self-distillation and saved in the layout vLLM's `eagle`
speculative method loads.

What vLLM (0.32, `model_executor/models/llama_eagle.py`) runs as the draft: for a position t, the embedding of
the next token x(t+1) and the target's final hidden state h(t) (after its last norm) are concatenated and mapped
back to the model width by `fc`; one Llama decoder layer whose input norm is skipped follows; its output (plus the
residual) is the draft hidden state, scored by the target's own `lm_head` (shared, as is the embedding when the
draft's equals the target's). Its next step feeds that draft hidden state back in place of h.

Training mirrors it with transformers' Llama layer: the target generates greedy continuations of random-token
prompts (what the serving suites send; the tokens the draft will be asked to predict), its hidden states are
recorded, and the head learns, teacher-forced at every generated position at once under a causal mask, in
minibatches, to map (x(t+1), h(t)) to h(t+1) (smooth L1) and to the target's next greedy token x(t+2) (cross-
entropy through the shared lm_head). The layer starts from the target's first layer, `fc` from an identity on the
embedding half. Sequences the head never saw are scored the same way each `log-every` steps (`held_out_accuracy`):
what the server's acceptance at the first draft position should approach.

Saved (`<cache>/models/eagle-<digest>/`): `config.json` (the target's, one layer), `model.safetensors` with
vLLM's EAGLE names (`fc.weight`, `embed_tokens.weight`, `layers.0.*` without `input_layernorm`; no `lm_head`),
and `eagle_log.jsonl`, the loss every `log_every` steps. Run as a process (`python -m harness.training.eagle
JOB.json`) under a deadline with the reproducible kernels of the tiny trainer.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from harness.config.model import EagleDraftSpec
from harness.errors import TrainingError
from harness.model.build import build_once
from harness.training.launchers import run_to_end
from harness.training.tiny_trainer import REPRODUCIBLE_ENV

BUILDER_VERSION = 1
MARKER = "llmqual-eagle.json"


def eagle_dir(target: Path, spec: EagleDraftSpec, cache: Path) -> Path:
    recipe = {"builder": BUILDER_VERSION, "target": target.name, "spec": spec.model_dump()}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    return cache / "models" / f"eagle-{digest}"


def ensure_eagle_draft(target: Path, spec: EagleDraftSpec, cache: Path) -> Path:
    """The draft head for `target`, trained first (in its own process) if it is not in the cache."""

    def build(out: Path) -> None:
        job = out / "job.json"
        job.write_text(json.dumps({"target": str(target), "out": str(out), "spec": spec.model_dump()}))
        argv = [sys.executable, "-m", "harness.training.eagle", str(job)]
        run_to_end(argv, out / "console.log", REPRODUCIBLE_ENV, spec.timeout_s, "EAGLE draft training")

    return build_once(eagle_dir(target, spec, cache), MARKER, build)


def _greedy_data(target: Any, vocab: int, count: int, spec: EagleDraftSpec, seed: int) -> Any:
    """`count` sequences: random-token prompts (what the serving suites send) continued greedily by the target,
    generated as one batch."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    prompts = torch.randint(0, vocab, (count, spec.prompt_tokens), generator=generator)
    n = spec.generated_tokens
    with torch.no_grad():
        return target.generate(
            prompts, attention_mask=torch.ones_like(prompts), max_new_tokens=n, min_new_tokens=n, do_sample=False
        )


def train(job: dict[str, Any]) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM
    from transformers.models.llama.modeling_llama import LlamaDecoderLayer, LlamaRotaryEmbedding

    spec = EagleDraftSpec.model_validate(job["spec"])
    target_dir, out = Path(job["target"]), Path(job["out"])
    torch.manual_seed(spec.seed)
    target: Any = AutoModelForCausalLM.from_pretrained(target_dir, dtype=torch.float32)
    target.eval()
    config = target.config
    tokens = _greedy_data(target, config.vocab_size, spec.sequences, spec, spec.seed)
    held_out = _greedy_data(target, config.vocab_size, max(1, spec.sequences // 4), spec, spec.seed + 1)
    with torch.no_grad():  # after the final norm, as vLLM hands the target's hidden states to the draft
        hidden = target.model(tokens).last_hidden_state
        held_hidden = target.model(held_out).last_hidden_state

    embed = target.model.embed_tokens.weight.detach()
    lm_head = target.lm_head.weight.detach()
    width = config.hidden_size
    fc = torch.nn.Linear(2 * width, width, bias=False)
    with torch.no_grad():
        fc.weight.zero_()
        fc.weight[:, :width] = torch.eye(width)
    layer = LlamaDecoderLayer(config, layer_idx=0)
    layer.load_state_dict(target.model.layers[0].state_dict())
    layer.input_layernorm = torch.nn.Identity()  # type: ignore[assignment]  # vLLM's EAGLE layer 0 skips it
    rotary = LlamaRotaryEmbedding(config)  # no parameters: positions only
    params = [*fc.parameters(), *layer.parameters()]
    optimiser = torch.optim.AdamW(params, lr=spec.learning_rate)

    def draft(ids: Any, h: Any) -> Any:
        """Position t: input (x(t+1), h(t)) -> the draft hidden state (vLLM's computation, every position at once)."""
        x = fc(torch.cat([embed[ids[:, 1:-1]], h[:, :-2]], dim=-1))
        positions = torch.arange(x.shape[1]).unsqueeze(0)
        mask = torch.full((x.shape[1],) * 2, float("-inf")).triu(1)[None, None]
        out = layer(x, attention_mask=mask, position_ids=positions, position_embeddings=rotary(x, positions))
        return out[0] if isinstance(out, tuple) else out

    # Only positions whose next-but-one token the target generated are learnt and judged: a prompt's next random
    # token is not the target's to predict.
    first = spec.prompt_tokens - 2
    sampler = torch.Generator().manual_seed(spec.seed)
    with (out / "eagle_log.jsonl").open("w", encoding="utf-8") as log:
        for step in range(1, spec.steps + 1):
            batch = torch.randint(0, tokens.shape[0], (min(spec.batch_size, tokens.shape[0]),), generator=sampler)
            ids, h = tokens[batch], hidden[batch]
            predicted = draft(ids, h)[:, first:]  # targets: h(t+1) and the target's greedy token x(t+2)
            logits = predicted @ lm_head.T
            token_loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, first + 2 :].flatten())
            hidden_loss = torch.nn.functional.smooth_l1_loss(predicted, h[:, first + 1 : -1])
            loss = token_loss + spec.hidden_weight * hidden_loss
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            if step % spec.log_every == 0 or step in (1, spec.steps):
                with torch.no_grad():
                    held_logits = draft(held_out, held_hidden)[:, first:] @ lm_head.T
                    held = (held_logits.argmax(-1) == held_out[:, first + 2 :]).float().mean().item()
                accuracy = (logits.argmax(-1) == ids[:, first + 2 :]).float().mean().item()
                record = {"step": step, "loss": loss.item(), "token_loss": token_loss.item(), "accuracy": accuracy}
                log.write(json.dumps(record | {"held_out_accuracy": held}) + "\n")
                log.flush()

    weights = {"fc.weight": fc.weight.detach().contiguous(), "embed_tokens.weight": embed.contiguous()}
    for name, value in layer.state_dict().items():
        if not name.startswith("input_layernorm"):
            weights[f"layers.0.{name}"] = value.detach().contiguous()
    save_file(weights, out / "model.safetensors")
    draft_config = json.loads((target_dir / "config.json").read_text(encoding="utf-8"))
    draft_config["num_hidden_layers"] = 1
    (out / "config.json").write_text(json.dumps(draft_config, indent=2), encoding="utf-8")
    (out / MARKER).write_text(json.dumps({"target": str(target_dir), **spec.model_dump()}, indent=2) + "\n")


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m harness.training.eagle JOB.json", file=sys.stderr)
        return 2
    try:
        train(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
    except (OSError, ValueError, RuntimeError) as exc:
        raise TrainingError(f"EAGLE draft training failed: {exc}") from exc
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
