"""`llmqual dataset generate|to-sharegpt`: make benchmark datasets, taking the AscendCloud tools' options
(generate_dataset.py, convert_to_sharegpt.py) as written beside the harness's own names.

    llmqual dataset generate --dataset data.json --tokenizer PATH --num-requests 1000 --avg-input 512 \\
        --std-input 128 --min-input 16 --max-input 2048 --avg-output 128 --std-output 32 --min-output 8 \\
        --max-output 512 [--seed 0]
    llmqual dataset to-sharegpt --input_file_path records.jsonl --out_file_name sharegpt.json \\
        --input_name question --output_name answer [--prefix_name system] [--code_type gbk]

Neither overwrites an existing file (generate_dataset.py opens its output exclusively too).
"""

from __future__ import annotations

import argparse
import codecs
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import HarnessError
from harness.load.convert import LengthDistribution, generate_records, to_sharegpt
from harness.load.datasets import read_records
from harness.load.tokens import Tokens
from harness.results.case import write_json


class DatasetCommandError(HarnessError):
    """A dataset command was given something it cannot use; raised before the tokenizer loads."""


def add_parser(commands: Any) -> None:
    dataset = commands.add_parser("dataset", help="make benchmark datasets")
    kinds = dataset.add_subparsers(dest="dataset_command", required=True)

    generate = kinds.add_parser("generate", help="records with normally distributed token lengths (custom format)")
    generate.add_argument("--tokenizer", required=True, help="tokenizer folder the lengths are counted in")
    generate.add_argument("--num-requests", "--num", dest="num", type=int, default=1000, help="number of records")
    # generate_dataset.py's names and defaults first, the harness's older names as aliases
    for side, mean, std, low, high in (("input", 1800, 500, 100, 3600), ("output", 160, 30, 40, 256)):
        generate.add_argument(f"--avg-{side}", f"--{side}-mean", dest=f"{side}_mean", type=float, default=mean)
        generate.add_argument(f"--std-{side}", f"--{side}-std", dest=f"{side}_std", type=float, default=std)
        generate.add_argument(f"--min-{side}", f"--{side}-min", dest=f"{side}_min", type=int, default=low)
        generate.add_argument(f"--max-{side}", f"--{side}-max", dest=f"{side}_max", type=int, default=high)
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument("--dataset", "-o", "--output", dest="output", type=Path, required=True, help="output file")
    generate.set_defaults(run=_cmd_generate)

    convert = kinds.add_parser("to-sharegpt", help="records with prefix/input/output fields to ShareGPT")
    convert.add_argument("records", type=Path, nargs="?", default=None, help="JSON list or JSONL of records")
    convert.add_argument("--input_file_path", dest="input_file_path", type=Path, default=None, help="same as RECORDS")
    convert.add_argument("--out_file_name", "-o", "--output", dest="output", type=Path, required=True)
    convert.add_argument("--input_name", "--input-field", dest="input_field", default="input")
    convert.add_argument("--output_name", "--output-field", dest="output_field", default="output")
    convert.add_argument(
        "--prefix_name", "--prefix-field", dest="prefix_field", default=None,
        help="field prepended to the input in the human turn (None: no prefix)",
    )  # fmt: skip
    convert.add_argument("--code_type", "--encoding", dest="encoding", default="utf-8", help="the records' encoding")
    convert.set_defaults(run=_cmd_to_sharegpt)


def _new_file(path: Path, option: str) -> None:
    if path.exists():
        raise DatasetCommandError(f"{option} {path} exists; the dataset tools never overwrite a file: name a new one")


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.num < 1:
        raise DatasetCommandError(f"--num-requests must be at least 1, got {args.num}")
    _new_file(args.output, "--dataset")
    try:
        inputs = LengthDistribution(args.input_mean, args.input_std, args.input_min, args.input_max)
        outputs = LengthDistribution(args.output_mean, args.output_std, args.output_min, args.output_max)
    except ValueError as exc:
        raise DatasetCommandError(f"--min/--max/--std of the inputs or outputs: {exc}") from exc
    tokens = Tokens.load(args.tokenizer)
    records = generate_records(tokens, args.num, inputs, outputs, np.random.default_rng(args.seed))
    write_json(args.output, records)
    print(f"wrote {len(records)} records to {args.output}")
    return 0


def _decodable(path: Path, encoding: str) -> None:
    """The records file exists and decodes in `encoding`; else an error naming --code_type."""
    try:
        codecs.lookup(encoding)
    except LookupError as exc:
        raise DatasetCommandError(f"--code_type {encoding}: not an encoding Python knows (utf-8, gbk, ...)") from exc
    try:
        path.read_bytes().decode(encoding)
    except OSError as exc:
        raise DatasetCommandError(f"--input_file_path {path}: cannot read it: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DatasetCommandError(
            f"--input_file_path {path} is not {encoding} text (byte {exc.start}); pass its encoding with --code_type"
        ) from exc


def _cmd_to_sharegpt(args: argparse.Namespace) -> int:
    source = args.input_file_path or args.records
    if source is None:
        raise DatasetCommandError("give the records file as --input_file_path FILE (or as the first argument)")
    _decodable(source, args.encoding)
    _new_file(args.output, "--out_file_name")
    prefix = None if args.prefix_field in (None, "", "None") else args.prefix_field
    records = read_records(source, args.encoding)
    conversations = to_sharegpt(records, args.input_field, args.output_field, prefix)
    write_json(args.output, conversations)
    print(f"wrote {len(conversations)} conversations to {args.output}")
    return 0
