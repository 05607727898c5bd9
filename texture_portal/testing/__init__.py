"""Test helpers shared across apps (importable from tests; not used at runtime)."""
