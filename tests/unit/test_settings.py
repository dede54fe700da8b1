"""Settings from the environment: how the services reach a production Temporal cluster."""

import pytest
from temporalio.service import TLSConfig

from common.settings import TemporalSettings
from gateway.config import Settings as GatewaySettings


def settings(monkeypatch, **env) -> TemporalSettings:
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_API_KEY", "TEMPORAL_TLS", "TEMPORAL_TLS_CERT",
                 "TEMPORAL_TLS_KEY", "TEMPORAL_TLS_CA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return TemporalSettings.from_env()


def test_local_dev_server_by_default(monkeypatch):
    local = settings(monkeypatch)
    assert (local.address, local.namespace, local.tls_config()) == ("localhost:7233", "default", False)


def test_api_key_switches_tls_on(monkeypatch):
    cloud = settings(monkeypatch, TEMPORAL_ADDRESS="ns.acct.tmprl.cloud:7233", TEMPORAL_NAMESPACE="ns.acct",
                     TEMPORAL_API_KEY="secret")
    assert cloud.tls_config() is True and cloud.api_key == "secret"


def test_client_certificate_and_ca_are_read_from_files(monkeypatch, tmp_path):
    for name in ("client.pem", "client.key", "ca.pem"):
        (tmp_path / name).write_bytes(name.encode())
    mtls = settings(monkeypatch, TEMPORAL_TLS_CERT=str(tmp_path / "client.pem"),
                    TEMPORAL_TLS_KEY=str(tmp_path / "client.key"), TEMPORAL_TLS_CA=str(tmp_path / "ca.pem"))
    assert mtls.tls_config() == TLSConfig(client_cert=b"client.pem", client_private_key=b"client.key",
                                          server_root_ca_cert=b"ca.pem")


def test_a_certificate_without_its_key_is_refused(monkeypatch, tmp_path):
    with pytest.raises(SystemExit, match="TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY"):
        settings(monkeypatch, TEMPORAL_TLS_CERT=str(tmp_path / "client.pem")).tls_config()


def test_gateway_listens_on_loopback_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("GATEWAY_LISTEN", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@localhost/orders")
    assert GatewaySettings.from_env().listen.startswith("127.0.0.1:")
