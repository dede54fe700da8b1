"""Settings every process reads from the environment."""

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig
from temporalio.service import TLSConfig

from common.db import url_for_role


@dataclass(frozen=True)
class TemporalSettings:
    """Where Temporal is and how to prove who we are, read as the `temporal` CLI reads it (temporalio.envconfig),
    so one environment serves both: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS,
    TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH (mTLS), TEMPORAL_TLS_SERVER_CA_CERT_PATH,
    TEMPORAL_TLS_SERVER_NAME, TEMPORAL_GRPC_META_*, or a profile (TEMPORAL_PROFILE) of the config file
    (TEMPORAL_CONFIG_FILE). With none of them: the local dev server, plain."""

    address: str
    namespace: str = "default"
    # The rest of Client.connect's arguments the environment gave: tls, api_key, rpc_metadata.
    connect: ClientConnectConfig = field(default_factory=lambda: ClientConnectConfig())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "TemporalSettings":
        config = ClientConfigProfile.load(override_env_vars=environ).to_client_connect_config()
        tls = config.get("tls")
        if isinstance(tls, TLSConfig) and bool(tls.client_cert) != bool(tls.client_private_key):
            raise SystemExit("set both TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH, or neither")
        address = config.pop("target_host", "localhost:7233")
        namespace = config.pop("namespace", "default")
        return cls(address, namespace, config)

    def connect_config(self) -> ClientConnectConfig:
        """Every argument of Client.connect these settings give: the address and namespace with the rest."""
        return {**self.connect, "target_host": self.address, "namespace": self.namespace}


def database_url(specific_var: str, role: str) -> str:
    """The service's own URL if given, else DATABASE_URL logged in as the service's role."""
    if os.environ.get(specific_var):
        return os.environ[specific_var]
    if not os.environ.get("DATABASE_URL"):
        raise SystemExit(f"set {specific_var} or DATABASE_URL (./dev up does this for the local stack)")
    return url_for_role(os.environ["DATABASE_URL"], role)
