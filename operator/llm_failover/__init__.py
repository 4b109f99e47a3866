"""llm-failover: a Kubernetes operator that keeps apps routed to a working LLM provider."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("llm-failover")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
