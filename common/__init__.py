"""What every service shares: settings, Postgres and Temporal connections, the payload codec and its server,
logs, traces and metrics, the step runner (step_runner.py) and the attempt wrapper (attempts.py), the validation of
ids and text (validation.py), worker versioning, and the brief's vendor stubs (vendor_stubs.py).

Imports no service, the gateway or anything above them."""

# The release, reported as the service.version of every span and the service_version tag of every metric.
__version__ = "0.1.0"
