"""Renderers of results: CSV layouts (and, later, HTML)."""
