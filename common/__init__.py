"""What every service shares: settings, Postgres and Temporal connections, the payload codec and its server,
logs, traces and metrics, the step budget and the attempt wrapper, and the brief's stubs."""

# The release, reported as the service.version of every span and the service_version tag of every metric.
__version__ = "0.1.0"
