"""Pure metric functions: requests in, numbers out; no clock, no I/O."""
