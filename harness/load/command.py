"""`llmqual dataset generate|to-sharegpt`: make benchmark datasets from parameters or from existing records.

    llmqual dataset generate --tokenizer PATH --num 1000 --input-mean 512 --input-std 128 --input-min 16 \\
        --input-max 2048 --output-mean 128 --output-std 32 --output-min 8 --output-max 512 --seed 0 -o data.json
    llmqual dataset to-sharegpt records.jsonl -o sharegpt.json --input-field question --output-field answer \\
        [--prefix-field system] [--encoding gbk]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from harness.load.convert import LengthDistribution, generate_records, to_sharegpt
from harness.load.datasets import read_records
from harness.load.tokens import Tokens
from harness.results.case import write_json


def add_parser(commands: Any) -> None:
    dataset = commands.add_parser("dataset", help="make benchmark datasets")
    kinds = dataset.add_subparsers(dest="dataset_command", required=True)

    generate = kinds.add_parser("generate", help="records with normally distributed token lengths (custom format)")
    generate.add_argument("--tokenizer", required=True, help="tokenizer folder the lengths are counted in")
    generate.add_argument("--num", type=int, required=True, help="number of records")
    for side, mean, std, low, high in (("input", 512, 128, 16, 2048), ("output", 128, 32, 8, 512)):
        generate.add_argument(f"--{side}-mean", type=float, default=mean)
        generate.add_argument(f"--{side}-std", type=float, default=std)
        generate.add_argument(f"--{side}-min", type=int, default=low)
        generate.add_argument(f"--{side}-max", type=int, default=high)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("-o", "--output", type=Path, required=True)
    generate.set_defaults(run=_cmd_generate)

    convert = kinds.add_parser("to-sharegpt", help="records with prefix/input/output fields to ShareGPT")
    convert.add_argument("records", type=Path, help="JSON list or JSONL of records")
    convert.add_argument("-o", "--output", type=Path, required=True)
    convert.add_argument("--input-field", default="input")
    convert.add_argument("--output-field", default="output")
    convert.add_argument("--prefix-field", default=None, help="prepended to the input in the human turn")
    convert.add_argument("--encoding", default="utf-8", help="encoding of the records file")
    convert.set_defaults(run=_cmd_to_sharegpt)


def _cmd_generate(args: argparse.Namespace) -> int:
    try:
        inputs = LengthDistribution(args.input_mean, args.input_std, args.input_min, args.input_max)
        outputs = LengthDistribution(args.output_mean, args.output_std, args.output_min, args.output_max)
    except ValueError as exc:
        raise SystemExit(f"llmqual dataset generate: {exc}") from exc
    tokens = Tokens.load(args.tokenizer)
    records = generate_records(tokens, args.num, inputs, outputs, np.random.default_rng(args.seed))
    write_json(args.output, records)
    print(f"wrote {len(records)} records to {args.output}")
    return 0


def _cmd_to_sharegpt(args: argparse.Namespace) -> int:
    records = read_records(args.records, args.encoding)
    conversations = to_sharegpt(records, args.input_field, args.output_field, args.prefix_field)
    write_json(args.output, conversations)
    print(f"wrote {len(conversations)} conversations to {args.output}")
    return 0
