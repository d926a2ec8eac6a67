"""The report's profile section: the traces captured around a case (linked) and its top operators by self time."""

from __future__ import annotations

from html import escape

from harness.report.cells import table
from harness.report.rundata import RunData


def profile_section(run: RunData) -> str:
    """Empty when the run captured no profile."""
    profiles = [d for d in run.documents if d["suite"] == "profile"]
    if not profiles:
        return ""
    parts = ["<h2>Profiles</h2>"]
    for d in profiles:
        folder = str(d["config"].get("folder", ""))
        files = d.get("checks", {}).get("files", [])
        links = ", ".join(f'<a href="{escape(f)}">{escape(f.rsplit("/", 1)[-1])}</a>' for f in files)
        parts.append(
            f"<h3>{escape(d['case_id'])}</h3><p>One more window of the case with the server's profiler on "
            f"({d['metrics'].get('profiled_s')} s; not one of its measured repeats). Traces in "
            f'<a href="{escape(folder)}">{escape(folder)}</a>: {links}.</p>'
        )
        rows = [
            [op["name"], op["self_us"] / 1000.0, op["calls"], f"{op['share']:.1%}"]
            for op in d.get("checks", {}).get("top_operators", [])
        ]
        parts.append(table(["operator", "self time (ms)", "calls", "share"], rows))
    return "".join(parts)
