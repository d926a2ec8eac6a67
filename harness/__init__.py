"""llmqual: a pytest-based qualification harness for LLM serving and training."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llmqual")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
