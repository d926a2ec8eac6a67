"""Rehearsals of runs: what a plan would start, with nothing started (`llmqual plan explain`)."""
