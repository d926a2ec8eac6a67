"""Secrets the run knows (API keys, passwords in URLs), kept out of every file and log the harness writes.

Whoever learns a secret registers it (`register`): the plugin for `--api-key`, the server for the key its plan
gives vLLM, an endpoint URL with a password. Every writer of the run folder passes its text through `redact`
(case JSON, run.json, results.jsonl); at the end of a run `scrub_folder` masks any that reached another file
(pytest's junit.xml, a log), and `redact_url` drops the password of a URL kept in a record. Secrets
never go on a command line either: the server gets its key as VLLM_API_KEY in its environment, where `ps` does
not show it. A canary key in tests/integration proves that no file of a run folder holds it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
MIN_LENGTH = 4  # shorter values would mask ordinary text; no real key is this short
_KNOWN: set[str] = set()


def register(secret: str | None) -> None:
    if secret and len(secret) >= MIN_LENGTH:
        _KNOWN.add(secret)


def redact(text: str) -> str:
    """`text` with every registered secret masked (longest first, so a key containing another is masked whole)."""
    for secret in sorted(_KNOWN, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_url(url: str) -> str:
    """`url` without the password of its user-info part (`http://user:***@host`), registering the password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    register(parts.password)
    host = parts.hostname or ""
    netloc = f"{parts.username}:{MASK}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def scrub_folder(directory: Path, max_bytes: int = 64 * 1024 * 1024) -> list[Path]:
    """Mask the registered secrets in every file under `directory` that holds one (files the harness does not
    write itself: pytest's junit.xml, server and training logs); returns the files changed. The last line of
    defence: writers redact already."""
    if not _KNOWN:
        return []
    needles = [secret.encode() for secret in _KNOWN]
    changed = []
    for path in directory.rglob("*"):
        if not path.is_file() or path.is_symlink() or path.stat().st_size > max_bytes:
            continue
        data = path.read_bytes()
        if any(needle in data for needle in needles):
            path.write_bytes(redact(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape"))
            changed.append(path)
    return changed
