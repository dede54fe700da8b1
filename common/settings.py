"""Settings every process reads from the environment."""

import os
from dataclasses import dataclass

from common.db import url_for_role


@dataclass(frozen=True)
class TemporalSettings:
    address: str
    namespace: str

    @classmethod
    def from_env(cls) -> "TemporalSettings":
        return cls(os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"), os.environ.get("TEMPORAL_NAMESPACE", "default"))


def database_url(specific_var: str, role: str) -> str:
    """The service's own URL if given, else DATABASE_URL logged in as the service's role."""
    if os.environ.get(specific_var):
        return os.environ[specific_var]
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit(f"set {specific_var} or DATABASE_URL (./dev up does this for the local stack)")
    return url_for_role(os.environ["DATABASE_URL"], role)
