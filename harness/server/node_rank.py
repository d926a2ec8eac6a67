"""`llmqual serve --plan P --node-rank N`: start node rank N of a server spanning nodes, on that node, until
interrupted (or until the rank exits), with the same guarantees as every process the harness starts: its own process
group (and its container, for a container plan), its log, stopped on every exit path.

The head (node rank 0) is started by the run on the machine that runs the suites; this is what the other nodes run.
Their commands are the ones `llmqual plan explain` prints under their node.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from harness.config.plan import Plan
from harness.errors import HarnessError
from harness.runtime.container import Container
from harness.runtime.image import resolved_image
from harness.runtime.process import ManagedProcess
from harness.server.arguments import vllm_arguments
from harness.server.ranks import rank_argv, rank_env
from harness.server.vllm import ServerConfig, VLLMServer

POLL_S = 1.0


def checked_rank(plan: Plan, node: int) -> int:
    """The master port node rank `node` joins; refuses, before anything starts, what cannot work on its own node."""
    nodes = plan.server.nodes
    if nodes is None:
        raise HarnessError(f"{plan.source}: --node-rank needs a server spanning nodes (server.nodes)")
    if not 1 <= node < nodes.count:
        raise HarnessError(
            f"{plan.source}: --node-rank {node}: the plan's other nodes are ranks 1 to {nodes.count - 1} (node rank 0 "
            "is the head, started by the run of the suites)"
        )
    if nodes.master_port is None:
        raise HarnessError(
            f"{plan.source}: server.nodes.master-port must be set to start a rank on its own node (without it the "
            "head picks a free port this node cannot know)"
        )
    return nodes.master_port


def rank_process(config: ServerConfig, node: int, master_port: int, log: Path, stack: ExitStack) -> ManagedProcess:
    """Node rank `node` of `config`'s server, started under `stack`: in its own container (this node's cards) for
    a container plan, else as a process of this machine's harness environment."""
    nodes = config.spec.nodes
    assert nodes is not None
    base = vllm_arguments(config, config.host, 0)  # --host and --port are dropped: a headless rank serves no API
    env = {**dict(config.env), **nodes.rank(node).env}
    if config.container is None:
        process_env = {**os.environ, **config.process_env(), **rank_env(config.platform, nodes, node)}
        argv = rank_argv(config.python or sys.executable, base, nodes, node, master_port)
        cpus = nodes.rank(node).cpus or config.spec.cpus
        return stack.enter_context(ManagedProcess(argv, log, env=process_env, nice=config.spec.nice, cpus=cpus))
    spec = config.container.model_copy(update={"image": resolved_image(config.container.image)})
    server = VLLMServer(config, log)
    cards = list(nodes.rank(node).devices or ()) if config.platform != "cpu" else []
    container = Container(spec, cards, platform=config.platform, reads=server.reads(), writes=server.writes())
    stack.enter_context(container)
    argv = container.exec_argv(rank_argv("vllm", base, nodes, node, master_port), env_names=list(env))
    return stack.enter_context(ManagedProcess(argv, log, env={**os.environ, **env}))


def serve_rank(config: ServerConfig, node: int, master_port: int, log: Path) -> int:
    """Run the rank until it exits (its exit status, 1 for a signal) or Ctrl-C/SIGTERM (KeyboardInterrupt)."""
    with ExitStack() as stack:
        process = rank_process(config, node, master_port, log, stack)
        nodes = config.spec.nodes
        assert nodes is not None
        print(f"node rank {node} started; joins {nodes.master_addr}:{master_port}; log: {log}", flush=True)
        while (code := process.returncode()) is None:
            time.sleep(POLL_S)
        print(f"node rank {node} exited with code {code}; log tail:\n{process.log_tail(20)}", file=sys.stderr)
        return code if code > 0 else 1
