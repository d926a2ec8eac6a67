"""Capacity questions answered by measurement: how long a context fits on how many cards (the capacity probe)."""
