"""Traces over OTLP and metrics on a Prometheus endpoint, switched on by the environment.

Tracing: on when OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) is set, configured by the standard
OTEL_* variables; otherwise the global provider stays the no-op one and nothing is exported.
Metrics: the Temporal SDK's own runtime serves /metrics on METRICS_LISTEN (host:port) when set.
"""

import os

from opentelemetry import trace
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

_provider = None


def tracing_enabled() -> bool:
    if os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return bool(os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup_tracing(service: str):
    """Install the OTLP-exporting tracer provider and the asyncpg instrumentation (once per process)."""
    global _provider
    if _provider is not None or not tracing_enabled():
        return _provider
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    _provider = TracerProvider(resource=resource)
    _provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(_provider)
    AsyncPGInstrumentor().instrument()
    return _provider


def shutdown_tracing() -> None:
    if _provider is not None:
        _provider.shutdown()


def runtime(metrics_listen: str | None = None) -> Runtime:
    listen = metrics_listen if metrics_listen is not None else os.environ.get("METRICS_LISTEN")
    if not listen:
        return Runtime.default()
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=listen)))


def trace_ids() -> tuple[str, str]:
    """(trace id, span id) of the current span, hex, or empty strings when nothing is traced."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return "", ""
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
