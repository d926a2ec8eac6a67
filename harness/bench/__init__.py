"""Benchmark cases: static (closed loop) and dynamic (open loop) runs against a served model."""
