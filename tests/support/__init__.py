"""What the tests and the soak share: the consistency checks across Postgres and Temporal (consistency.py)."""
