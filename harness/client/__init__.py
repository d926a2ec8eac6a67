"""The OpenAI-compatible client: one SSE parser, one request function, failures recorded as data."""
