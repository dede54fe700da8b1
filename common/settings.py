"""Settings every process reads from the environment."""

import os
from dataclasses import dataclass
from pathlib import Path

from temporalio.service import TLSConfig

from common.db import url_for_role


@dataclass(frozen=True)
class TemporalSettings:
    """Where Temporal is and how to prove who we are: plain on the local stack; TLS (mTLS with a client
    certificate) and/or an API key on a production cluster or Temporal Cloud."""

    address: str
    namespace: str
    api_key: str = ""
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca: str = ""

    @classmethod
    def from_env(cls) -> "TemporalSettings":
        return cls(
            address=os.environ.get("TEMPORAL_ADDRESS", "localhost:7233"),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
            api_key=os.environ.get("TEMPORAL_API_KEY", ""),
            tls=os.environ.get("TEMPORAL_TLS", "").lower() in ("1", "true", "yes"),
            tls_cert=os.environ.get("TEMPORAL_TLS_CERT", ""),
            tls_key=os.environ.get("TEMPORAL_TLS_KEY", ""),
            tls_ca=os.environ.get("TEMPORAL_TLS_CA", ""),
        )

    def tls_config(self) -> TLSConfig | bool:
        """TLS when asked for, when any certificate is given, or with an API key (which needs TLS)."""
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SystemExit("set both TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY, or neither")
        if not (self.tls or self.tls_cert or self.tls_ca or self.api_key):
            return False
        if not (self.tls_cert or self.tls_ca):
            return True
        return TLSConfig(client_cert=_read(self.tls_cert), client_private_key=_read(self.tls_key),
                         server_root_ca_cert=_read(self.tls_ca))


def _read(path: str) -> bytes | None:
    return Path(path).read_bytes() if path else None


def database_url(specific_var: str, role: str) -> str:
    """The service's own URL if given, else DATABASE_URL logged in as the service's role."""
    if os.environ.get(specific_var):
        return os.environ[specific_var]
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit(f"set {specific_var} or DATABASE_URL (./dev up does this for the local stack)")
    return url_for_role(os.environ["DATABASE_URL"], role)
