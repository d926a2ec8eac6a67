"""The report's capacity section: the probe's table (longest max-model-len per card count and memory)."""

from __future__ import annotations

from html import escape

from harness.report.cells import table
from harness.report.rundata import RunData


def capacity_section(run: RunData) -> str:
    """Empty when the run measured no capacity question."""
    probes = [d for d in run.documents if d["suite"] == "capacity"]
    if not probes:
        return ""
    rows = []
    for d in probes:
        m, config = d["metrics"], d["config"]
        length = m.get("max_model_len")
        refused = d.get("checks", {}).get("refused_by_engine")
        rows.append(
            [
                config.get("model"),
                config.get("cards"),
                config.get("memory"),
                f"{length / 1024:g}K" if isinstance(length, int) else None,
                length,
                m.get("first_failed"),
                "vLLM's KV check" if refused else "",
                m.get("engine_estimate"),
                m.get("starts"),
            ]
        )
    headers = ["model", "cards", "memory", "max-model-len", "tokens", "first failed", "refused by", "vLLM's estimate"]
    intro = (
        "<p>The longest max-model-len that started and served a static benchmark, per card count and memory; "
        f"every attempt is in <code>{escape('capacity/attempts.jsonl')}</code>.</p>"
    )
    return "<h2>Capacity</h2>" + intro + table([*headers, "server starts"], rows)
