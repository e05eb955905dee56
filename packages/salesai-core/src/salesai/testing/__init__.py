"""Helpers for testing salesai and its plugins: fixtures, conformance checks, a CLI runner."""
