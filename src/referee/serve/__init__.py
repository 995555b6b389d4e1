"""Serving judges: an HTTP API with micro-batching and safety limits, and a web page."""

from referee.serve.app import create_app
from referee.serve.server import load_judges, read_api_keys, running, serve

__all__ = ["create_app", "load_judges", "read_api_keys", "running", "serve"]
