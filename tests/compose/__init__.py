"""The compose suite (tests/compose/conftest.py)."""
