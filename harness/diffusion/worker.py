"""The diffusion worker: `python -m harness.diffusion.worker JOB.json` loads the pipeline once and makes the job's
calls in order, writing one JSON line per event to the job's `out` file as it happens (nothing measured is lost if
the process is stopped later). Run by harness.diffusion.measure under the case's deadline, in its own process
group: torch, diffusers and the device runtime stay out of pytest's process, and a hang is killed whole.

Events: {"event": "loaded", "seconds", "pipeline", "device"}; then per call {"event": "call", "phase": "warmup" |
"measure", "repeat", "index", "seconds", "images", "sizes": [[width, height], ...]}. A call's time runs from the
pipeline call to its decoded images, with the device synchronised at both ends (text encoding, the denoising
steps and the VAE decode; not the PNG encoding).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, TextIO

DTYPES = ("float32", "bfloat16", "float16")


def _synchronise(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "npu":
        torch.npu.synchronize()  # type: ignore[attr-defined]  # torch_npu adds torch.npu


def _emit(out: TextIO, event: dict[str, Any]) -> None:
    out.write(json.dumps(event) + "\n")
    out.flush()


def run(job: dict[str, Any]) -> None:
    device = job["device"]
    if device == "npu":
        import torch_npu  # noqa: F401  (registers the npu device with torch; only ever imported on Ascend)
    import torch
    from diffusers import DiffusionPipeline

    from harness.diffusion.tiny_flux import ensure_tiny_flux

    folder = ensure_tiny_flux(Path(job["cache"])) if job["model"] == "tiny" else Path(job["model"])
    with Path(job["out"]).open("a", encoding="utf-8") as out:
        started = time.perf_counter()
        dtype = getattr(torch, job["dtype"])
        pipeline = DiffusionPipeline.from_pretrained(folder, dtype=dtype).to(device)
        pipeline.set_progress_bar_config(disable=True)
        _synchronise(device)
        loaded = {"seconds": time.perf_counter() - started, "pipeline": type(pipeline).__name__, "device": device}
        _emit(out, {"event": "loaded", **loaded})
        images: list[Any] = []
        for index, call in enumerate(job["calls"]):
            generator = torch.Generator("cpu").manual_seed(job["seed"] + index)
            _synchronise(device)
            started = time.perf_counter()
            images = pipeline(
                prompt=call["prompts"],
                height=job["height"],
                width=job["width"],
                num_inference_steps=job["steps"],
                guidance_scale=job["guidance_scale"],
                max_sequence_length=job["max_sequence_length"],
                generator=generator,
            ).images
            _synchronise(device)
            seconds = time.perf_counter() - started
            event = {"event": "call", "phase": call["phase"], "repeat": call["repeat"], "index": index}
            sizes = [list(image.size) for image in images]
            _emit(out, event | {"seconds": seconds, "images": len(images), "sizes": sizes})
        if job.get("sample") and images:
            images[0].save(job["sample"])


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m harness.diffusion.worker JOB.json", file=sys.stderr)
        return 2
    run(json.loads(Path(argv[1]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
