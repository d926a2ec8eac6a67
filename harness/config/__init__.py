"""Typed, validated configuration: plans are checked once, up front, and trusted after."""

from harness.config.plan import ModelSpec, Plan, ServerSpec, SmokeSpec, TinyModelSpec, load_plan

__all__ = ["ModelSpec", "Plan", "ServerSpec", "SmokeSpec", "TinyModelSpec", "load_plan"]
