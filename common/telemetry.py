"""Traces over OTLP and metrics on a Prometheus endpoint, switched on by the environment.

Tracing: on when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, configured by the standard
OTEL_* variables; otherwise the global provider stays the no-op one, nothing is exported and Temporal calls carry
no trace context. Temporal's side is temporalio's OpenTelemetryPlugin (experimental), which builds a workflow
worker (or Replayer) only on the replay-safe provider of create_tracer_provider: setup_tracing before connecting.
Metrics: the Temporal SDK's own runtime serves /metrics on METRICS_LISTEN (host:port) when set.
"""

import logging
import os

from opentelemetry import trace
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin, ReplaySafeTracerProvider, create_tracer_provider
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from common import __version__

_provider: ReplaySafeTracerProvider | None = None


def tracing_enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def plugin() -> OpenTelemetryPlugin:
    """Client spans and context propagation; on workers a span per workflow run (ended when the run ends, so it has
    the run's duration), per activity attempt (`RunActivity:<step>`, see common/attempts.py) and per handler."""
    return OpenTelemetryPlugin(add_temporal_spans=True)


def plugins() -> list[OpenTelemetryPlugin]:
    """What common/temporal.py connects with: the plugin when tracing is on, nothing when it is off."""
    return [plugin()] if tracing_enabled() else []


def setup_tracing(service: str) -> ReplaySafeTracerProvider | None:
    """Install the OTLP-exporting, replay-safe tracer provider and the asyncpg instrumentation (once per process)."""
    global _provider
    if _provider is not None or not tracing_enabled():
        return _provider
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    exporter: SpanExporter
    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter

        exporter = GrpcSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

        exporter = HttpSpanExporter()
    resource = Resource.create(
        {"service.name": os.environ.get("OTEL_SERVICE_NAME", service), "service.version": __version__}
    )
    _provider = create_tracer_provider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(_provider)
    # The instrumentor's __init__ has no annotations (opentelemetry-instrumentation-asyncpg).
    AsyncPGInstrumentor().instrument()  # type: ignore[no-untyped-call]
    return _provider


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.shutdown()


def runtime(metrics_listen: str | None = None) -> Runtime:
    """The SDK runtime: its own logs (Rust core: retried calls, lost completions) go through Python logging,
    so they come out as JSON lines like every other log line; metrics on METRICS_LISTEN when set."""
    listen = metrics_listen if metrics_listen is not None else os.environ.get("METRICS_LISTEN")
    return Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(
                filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
                forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
            ),
            # Prometheus naming: counters end in _total, durations are seconds
            # (temporal_activity_execution_latency_seconds).
            metrics=PrometheusConfig(bind_address=listen, counters_total_suffix=True, durations_as_seconds=True)
            if listen
            else None,
            global_tags={"service_version": __version__},
        )
    )


def trace_ids() -> tuple[str, str]:
    """(trace id, span id) of the current span, hex, or empty strings when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
