"""Imports every domain's jobs, so the worker and the API register the same set."""

from outreach.kit import maintenance  # noqa: F401
