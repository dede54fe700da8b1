"""The compose suite's stack: docker-compose.yml on a real Docker engine, with stand-in images where the engine
cannot pull, reached only on its published ports on 127.0.0.1 (grpcurl, the `orders` CLI, the gateway's stubs),
as a user would. `./dev compose-test` runs it (pytest -m compose); `./dev test` leaves it out.

Where no engine can be had (none installed and no root to install one, or none running and no root to start it)
every test is skipped with that reason: not run, never passed.
"""

import json
import os
import subprocess
import time
from dataclasses import dataclass, field

import pytest

from lab import report
from stack import compose

REPORT = compose.ROOT / "docs" / "reports" / "compose"

# What the suite measured, printed at the end of the run (seconds unless named otherwise).
MEASURED: dict[str, str] = {}
NOT_RUN: list[str] = []


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/compose/" in str(item.fspath):
            item.add_marker(pytest.mark.compose)


def pytest_terminal_summary(terminalreporter) -> None:
    if NOT_RUN:
        terminalreporter.write_line(f"compose suite NOT RUN: {NOT_RUN[0]}", red=True)
    for what, value in MEASURED.items():
        terminalreporter.write_line(f"compose: {what}: {value}")
    # A whole run that passed writes its figures as the report docs/ links to (docs/reports/compose.md).
    whole = not terminalreporter.config.option.keyword and not terminalreporter.stats.get("failed")
    if MEASURED and not NOT_RUN and whole:
        source = report.provenance("pytest", ["-m", "compose", "tests/compose"])
        source["command"] = "./dev compose-test"
        table = report.table(["what", "figure"], [[what, value] for what, value in MEASURED.items()])
        report.write(REPORT, "Compose on a real engine", source, dict(MEASURED), ["## Measured\n\n" + table])


@dataclass
class Stack:
    """The compose project under test and the calls the tests make on it."""

    standins: bool
    env: dict[str, str] = field(default_factory=dict)

    def compose(self, *args: str, check: bool = True, extra_files: tuple[str, ...] = ()) -> str:
        more = [arg for path in extra_files for arg in ("-f", path)]
        return compose.compose(*more, *args, standins=self.standins, env=self.env, check=check, capture=True).stdout

    def containers(self, service: str = "", everything: bool = False) -> list[str]:
        args = ["ps", "--format", "{{.Names}}", "--filter", f"label=com.docker.compose.project={compose.PROJECT}"]
        if everything:
            args.insert(1, "-a")
        if service:
            args += ["--filter", f"label=com.docker.compose.service={service}"]
        return sorted(compose.docker(*args).stdout.split())

    def inspect(self, container: str) -> dict:
        return json.loads(compose.docker("inspect", container).stdout)[0]

    def crash(self, container: str) -> int:
        """SIGKILLs the container's main process from the host, as an OOM kill would; returns its restart count."""
        state = self.inspect(container)
        subprocess.run(["kill", "-9", str(state["State"]["Pid"])], check=True)
        return int(state["RestartCount"])

    def wait_healthy(self, container: str, timeout: float = 90, restarts: int = 0) -> float:
        """Seconds until the container has been restarted `restarts` times, runs and is healthy (or just runs,
        without a health check)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            seen = self.inspect(container)
            state = seen["State"]
            healthy = state.get("Health", {}).get("Status", "healthy") == "healthy"
            if seen["RestartCount"] >= restarts and state["Running"] and healthy:
                return time.monotonic() - started
            time.sleep(0.2)
        raise AssertionError(f"{container} not healthy within {timeout}s: {self.inspect(container)['State']}")


@pytest.fixture(scope="session")
def engine() -> None:
    started = time.monotonic()
    try:
        if compose.ensure_engine(say=False):
            MEASURED["engine started (installed first where missing)"] = f"{time.monotonic() - started:.1f} s"
    except compose.SetupError as err:
        NOT_RUN.append(str(err))
        pytest.skip(f"compose suite not run: {err}")
    except FileNotFoundError as err:
        NOT_RUN.append(str(err))
        pytest.skip(f"compose suite not run: {err}")


@pytest.fixture(scope="session")
def built(engine: None) -> bool:
    """The images built from nothing of the project's (the stand-in base image is kept between runs on a machine);
    returns whether stand-ins are used."""
    compose.compose("--profile", "*", "down", "--volumes", "--remove-orphans", standins=True)
    taken = compose.taken_ports()
    if taken:
        pytest.fail(f"ports already taken on 127.0.0.1: {', '.join(taken)}")
    started = time.monotonic()
    base_missing = compose.docker("image", "inspect", compose.ROOTFS_IMAGE).returncode != 0
    standins = compose.prepare()
    what = "debootstrap base, stand-ins and project images" if base_missing and standins else "images"
    MEASURED[f"{what} built"] = f"{time.monotonic() - started:.1f} s"
    sizes = compose.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}").stdout.split("\n")
    MEASURED["image sizes"] = ", ".join(line for line in sizes if line.startswith("orderlife"))
    return standins


@pytest.fixture(scope="session")
def stack(built: bool):
    """Every service up and healthy, the tracing profile's OTLP receiver and the codec server included."""
    from common import codec

    env = {
        "PAYLOAD_KEY": os.environ.get("PAYLOAD_KEY") or codec.new_key(),
        "COMPOSE_PROFILES": "codec,tracing",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317",
    }
    running = Stack(built, env)
    started = time.monotonic()
    running.compose("up", "--wait", "--wait-timeout", "240", "--quiet-pull")
    MEASURED["from nothing to all healthy (docker compose up --wait)"] = f"{time.monotonic() - started:.1f} s"
    yield running
    running.compose("--profile", "*", "down", "--volumes", "--remove-orphans", check=False)
