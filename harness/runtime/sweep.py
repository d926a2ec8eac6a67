"""Leftovers of runs that died without cleaning up (`kill -9`, a lost node), found and stopped at the next start.

Every process the harness starts carries `LLMQUAL_OWNER=<pid>:<start time>` of the harness process that started it
(children inherit it, also those that leave the process group), and every container it starts the same value as
its `llmqual.owner` label, with `llmqual.run` the run id. An owner is dead when no process has that pid with that
start time (so a reused pid does not keep orphans alive). `sweep` stops what dead owners left: whole process
groups, and containers with `docker rm -f`. It runs when a run starts, before any card is leased: the kernel frees
a dead run's card leases at once, and its servers must be gone before a new run takes those cards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

OWNER_ENV = "LLMQUAL_OWNER"
RUN_ENV = "LLMQUAL_RUN_ID"
DOCKER_LIST_TIMEOUT_S = 30.0


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def owner_token(pid: int | None = None) -> str:
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{_start_ticks(pid)}"


def owner_alive(token: str) -> bool:
    pid, _, ticks = token.partition(":")
    return pid.isdigit() and _start_ticks(int(pid)) == ticks


@dataclass(frozen=True)
class Orphan:
    pid: int
    pgid: int
    owner: str
    command: str


def orphans(proc: Path = Path("/proc")) -> list[Orphan]:
    """Live processes carrying an owner token whose owner is dead."""
    found = []
    prefix = f"{OWNER_ENV}=".encode()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            tokens = [v[len(prefix) :] for v in (entry / "environ").read_bytes().split(b"\0") if v.startswith(prefix)]
            if not tokens or owner_alive(tokens[0].decode()) or _start_ticks(int(entry.name)) is None:
                continue
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(Orphan(int(entry.name), os.getpgid(int(entry.name)), tokens[0].decode(), command[:200]))
        except (OSError, ValueError):
            continue  # gone meanwhile, or not ours to read
    return found


def sweep_processes() -> list[str]:
    """Stop every orphan's process group (SIGTERM, then SIGKILL); returns what was stopped."""
    from harness.runtime.process import kill_group

    stopped = []
    own_group = os.getpgid(0)
    for pgid in sorted({o.pgid for o in orphans()}):
        members = [o for o in orphans() if o.pgid == pgid]
        if pgid == own_group:  # an orphan that left its group into ours: only the process itself
            for orphan in members:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(orphan.pid, 9)
        else:
            with contextlib.suppress(Exception):
                kill_group(pgid, grace_s=10.0)
        stopped += [f"process {o.pid} ({o.command}) of dead run owner {o.owner}" for o in members]
    return stopped


def sweep_containers() -> list[str]:
    """Remove containers labelled `llmqual` whose owner is dead; nothing when docker is not installed."""
    docker = shutil.which("docker")
    if docker is None:
        return []
    from harness.runtime.container import remove

    listing = [docker, "ps", "--all", "--filter", "label=llmqual", "--format", '{{.Names}}\t{{.Label "llmqual.owner"}}']
    try:
        done = subprocess.run(listing, capture_output=True, text=True, timeout=DOCKER_LIST_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    removed = []
    for line in done.stdout.splitlines() if done.returncode == 0 else []:
        name, _, owner = line.partition("\t")
        if owner and not owner_alive(owner):
            remove(name)
            removed.append(f"container {name} of dead run owner {owner}")
    return removed


def sweep() -> list[str]:
    """Stop everything dead runs left on this host; returns a line per process or container stopped."""
    return sweep_containers() + sweep_processes()
