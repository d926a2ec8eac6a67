"""Model servers: a vLLM process the harness starts, or an endpoint that already runs elsewhere."""

from harness.server.endpoint import Endpoint, connect_endpoint

__all__ = ["Endpoint", "connect_endpoint"]
