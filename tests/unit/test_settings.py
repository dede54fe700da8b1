"""Settings from the environment: how the services reach a production Temporal cluster, under the names the
`temporal` CLI reads (temporalio.envconfig), so one environment serves both."""

import pytest
from temporalio.service import TLSConfig

from common.settings import TemporalSettings
from gateway.config import Settings as GatewaySettings


def test_local_dev_server_by_default(tmp_path):
    local = TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": str(tmp_path / "none.toml")})
    assert (local.address, local.namespace, local.connect) == ("localhost:7233", "default", {})


def test_api_key_switches_tls_on():
    cloud = TemporalSettings.from_env(
        {"TEMPORAL_ADDRESS": "ns.acct.tmprl.cloud:7233", "TEMPORAL_NAMESPACE": "ns.acct", "TEMPORAL_API_KEY": "secret"}
    )
    assert (cloud.address, cloud.namespace) == ("ns.acct.tmprl.cloud:7233", "ns.acct")
    assert cloud.connect == {"api_key": "secret", "tls": True}


def test_client_certificate_and_ca_are_read_from_the_temporal_cli_variables(tmp_path):
    for name in ("client.pem", "client.key", "ca.pem"):
        (tmp_path / name).write_bytes(name.encode())
    mtls = TemporalSettings.from_env(
        {
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "client.pem"),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "client.key"),
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "ca.pem"),
        }
    )
    assert mtls.connect["tls"] == TLSConfig(
        client_cert=b"client.pem", client_private_key=b"client.key", server_root_ca_cert=b"ca.pem"
    )


def test_a_profile_of_the_temporal_config_file_is_used(tmp_path):
    config = tmp_path / "temporal.toml"
    config.write_text('[profile.prod]\naddress = "prod.internal:7233"\nnamespace = "orders"\n')
    prod = TemporalSettings.from_env({"TEMPORAL_CONFIG_FILE": str(config), "TEMPORAL_PROFILE": "prod"})
    assert (prod.address, prod.namespace) == ("prod.internal:7233", "orders")


def test_a_certificate_without_its_key_is_refused(tmp_path):
    (tmp_path / "client.pem").write_bytes(b"cert")
    with pytest.raises(SystemExit, match="TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH"):
        TemporalSettings.from_env({"TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "client.pem")})


def test_gateway_listens_on_loopback_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("GATEWAY_LISTEN", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@localhost/orders")
    assert GatewaySettings.from_env().listen.startswith("127.0.0.1:")
