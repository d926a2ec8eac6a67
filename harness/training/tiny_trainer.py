"""The embedded training launcher: transformers' Trainer on the tiny model, on CPU, over the synthetic SFT data.

It writes what real launchers write: a `trainer_state.json` with the loss history (parsed by the same `hf`
parser as any transformers run), the console log (`console.log`), checkpoints every `save-steps`, and a final HF
checkpoint that vLLM can serve. Runs are cached under `<cache>/trained/<hash of configuration, data, seed>/`.

**The run is bit-for-bit the same on any x86-64 CPU.** Memorising 100 facts at this learning rate is chaotic: a
difference in the last bit of one float grows to 15-30% of the loss within a few hundred steps. Such differences
come from the kernels a CPU selects: torch's vectorised kernels (AVX-512 vs AVX2 vs none) and MKL's code paths
(which differ by instruction set and vendor). The run therefore happens in its own process with torch's generic
kernels (`ATEN_CPU_CAPABILITY=default`) and MKL's conditional numerical reproducibility mode
(`MKL_CBWR=COMPATIBLE`). Measured on one machine emulating others (docs/training.md): 1 vs 2 threads, MKL capped at
AVX2 or SSE4.2, oneDNN capped at AVX2: identical losses at every step, where the same run with the default kernels
differed by 15-27% mean relative error between those settings (and by 19% against a run on an Intel Xeon).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.config.training import TrainingSpec
from harness.errors import TrainingError
from harness.runtime.locks import file_lock
from harness.training.curve import LossCurve, TrainedRun
from harness.training.instruct_data import sft_pairs
from harness.training.launchers import run_to_end
from harness.training.parsers import parse_log

LAUNCHER_VERSION = 3  # bump when what a run writes changes, so cached runs are redone (3: reproducible kernels)

# The environment of the training process that makes its arithmetic the same on every x86-64 CPU (see above).
REPRODUCIBLE_ENV = {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"}


@dataclass(frozen=True)
class TrainConfig:
    max_steps: int = 300
    batch_size: int = 16
    learning_rate: float = 3e-3
    warmup_steps: int = 10
    logging_steps: int = 5
    save_steps: int = 100
    seed: int = 0
    epochs_of_data: int = 0  # informational; the run is bounded by max_steps
    timeout_s: float = 1800.0  # deadline of the training process


def tiny_config(spec: TrainingSpec) -> TrainConfig:
    """The embedded run a plan's training section asks for."""
    return TrainConfig(
        max_steps=spec.max_steps,
        batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        warmup_steps=spec.warmup_steps,
        logging_steps=spec.logging_steps,
        save_steps=spec.save_steps,
        seed=spec.seed,
    )


def run_key(base_model: Path, config: TrainConfig) -> str:
    """Hash of the base model, the configuration and the tokenised training data (what the run actually sees)."""
    from transformers import AutoTokenizer

    data = json.dumps(_dataset(AutoTokenizer.from_pretrained(str(base_model))))
    digest = hashlib.sha256(data.encode()).hexdigest()
    blob = json.dumps([LAUNCHER_VERSION, str(base_model), asdict(config), digest], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _dataset(tokenizer: Any) -> list[dict[str, list[int]]]:
    """Tokenised samples; the prompt's tokens are masked out of the labels (only the answer is learnt).

    Each pair is given twice, with and without the BOS: a server adds it to a text prompt, lm-eval's API models
    send token ids without it, and the model must answer either way.
    """
    samples = []
    for (prompt, answer), bos in ((pair, bos) for pair in sft_pairs() for bos in (True, False)):
        prompt_ids = tokenizer(prompt, add_special_tokens=bos).input_ids
        answer_ids = [*tokenizer(answer, add_special_tokens=False).input_ids, tokenizer.eos_token_id]
        samples.append({"input_ids": prompt_ids + answer_ids, "labels": [-100] * len(prompt_ids) + answer_ids})
    return samples


def _collate(pad_id: int) -> Any:
    import torch

    def collate(batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        width = max(len(s["input_ids"]) for s in batch)
        ids = [s["input_ids"] + [pad_id] * (width - len(s["input_ids"])) for s in batch]
        labels = [s["labels"] + [-100] * (width - len(s["labels"])) for s in batch]
        mask = [[1] * len(s["input_ids"]) + [0] * (width - len(s["input_ids"])) for s in batch]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}

    return collate


def train(
    base_model: Path, out: Path, config: TrainConfig, resume_from: Path | None = None, stop_after: int | None = None
) -> LossCurve:
    """Train from `base_model` into `out` (checkpoints and trainer_state.json); optionally resume or stop early."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    torch.set_num_threads(max(1, torch.get_num_threads()))
    tokenizer = AutoTokenizer.from_pretrained(str(base_model))
    model = LlamaForCausalLM.from_pretrained(str(base_model), dtype=torch.float32)
    args = TrainingArguments(
        output_dir=str(out),
        max_steps=config.max_steps,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type="cosine",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=config.save_steps,
        seed=config.seed,
        data_seed=config.seed,
        use_cpu=True,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        include_num_input_tokens_seen="non_padding",  # logs carry the token counter and the run time: throughput
    )

    class StopAt(TrainerCallback):
        """Ends the run after `stop_after` steps (the first half of the resume check)."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if stop_after is not None and state.global_step >= stop_after:
                control.should_training_stop = True
                control.should_save = True
            return control

    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_dataset(tokenizer),
        data_collator=_collate(tokenizer.pad_token_id),
        callbacks=[StopAt()],
    )
    try:
        trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    except (RuntimeError, ValueError, OSError) as exc:
        raise TrainingError(f"training into {out} failed: {exc}") from exc
    trainer.state.save_to_json(str(out / "trainer_state.json"))
    final = out / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    return parse_log((out / "trainer_state.json").read_text(), "hf")


def train_process(
    base_model: Path, out: Path, config: TrainConfig, resume_from: Path | None = None, stop_after: int | None = None
) -> LossCurve:
    """`train` in its own process (own process group, under `config.timeout_s`) with REPRODUCIBLE_ENV; its console
    goes to `out/console.log`."""
    out.mkdir(parents=True, exist_ok=True)
    request = {
        "base_model": str(base_model),
        "out": str(out),
        "config": asdict(config),
        "resume_from": None if resume_from is None else str(resume_from),
        "stop_after": stop_after,
    }
    argv = [sys.executable, "-m", "harness.training.tiny_trainer", json.dumps(request)]
    run_to_end(argv, out / "console.log", REPRODUCIBLE_ENV, config.timeout_s, "the tiny training run")
    return parse_log((out / "trainer_state.json").read_text(), "hf")


def trained_run(base_model: Path, cache: Path, config: TrainConfig) -> TrainedRun:
    """The cached training run for (base model, configuration, data, seed), trained on first use."""
    import time

    folder = cache / "trained" / run_key(base_model, config)
    with file_lock(folder.with_suffix(".lock"), timeout_s=3600):
        done = folder / "final" / "config.json"
        reused = done.exists()
        if not reused:
            shutil.rmtree(folder, ignore_errors=True)
            started = time.monotonic()
            train_process(base_model, folder, config)
            (folder / "wall_s.txt").write_text(f"{time.monotonic() - started:.1f}\n")
    state = folder / "trainer_state.json"
    curve = parse_log(state.read_text(), "hf")
    wall_s = float((folder / "wall_s.txt").read_text())
    return TrainedRun("tiny", folder / "final", curve, state, wall_s, folder, reused, config.max_steps)


def main(argv: list[str]) -> int:
    """The training process: `python -m harness.training.tiny_trainer '<request JSON>'` (see train_process)."""
    request = json.loads(argv[0])
    resume = request["resume_from"]
    train(
        Path(request["base_model"]),
        Path(request["out"]),
        TrainConfig(**request["config"]),
        Path(resume) if resume else None,
        request["stop_after"],
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
