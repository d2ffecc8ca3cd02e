"""Adapters that run only on a developer's machine (the local runtime's embedded defaults)."""
