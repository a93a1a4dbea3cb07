"""Helpers shipped for tests: simple states, keys and contexts."""
