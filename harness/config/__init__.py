"""Typed, validated configuration: plans are checked once, up front, and trusted after."""

from harness.config.model import ModelSpec, TinyModelSpec
from harness.config.plan import Plan, ServerSpec, load_plan
from harness.config.suites import SmokeSpec, SuitesSpec

__all__ = ["ModelSpec", "Plan", "ServerSpec", "SmokeSpec", "SuitesSpec", "TinyModelSpec", "load_plan"]
