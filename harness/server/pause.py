"""Holding an idle server still while another is measured beside it (A/B comparisons on shared cores).

vLLM's CPU engine is not idle when it has no requests: measured here, an idle tiny-model server kept 0.1 of a core
busy, and with two servers up, a window of the one measured stalled for 1-3 s in 5 of 24 windows (1 of 24 with
the other stopped). A stopped server takes no CPU; it is continued as soon as the window ends, and a server that
is continued is ready at once (the switch costs two signals, or `docker pause`/`unpause` for a container).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from harness.runtime.container import paused as paused_container
from harness.runtime.process import stopped
from harness.server.vllm import VLLMServer


@contextlib.contextmanager
def held(server: VLLMServer) -> Iterator[None]:
    """`server` stopped for the `with` block: its container paused, or its process group stopped."""
    if server.container_name is not None:
        with paused_container(server.container_name):
            yield
    elif server.pid is not None:
        with stopped(server.pid):
            yield
    else:
        yield  # not running: nothing to hold
