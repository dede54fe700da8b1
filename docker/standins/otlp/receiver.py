"""An OTLP/gRPC trace receiver for the `tracing` profile's stand-in (docker/standins/otlp): keeps every span
exported to port 4317 and lists them as JSON at http://HOST:16686/api/spans.

    python receiver.py          serves both ports
    python receiver.py --check  exits 0 when the JSON port answers (the image's health check)
"""

import json
import sys
import threading
import urllib.request
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

SPANS: list[dict[str, Any]] = []
LOCK = threading.Lock()


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        received = []
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        {
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "service": resource.get("service.name", ""),
                        }
                    )
        with LOCK:
            SPANS.extend(received)
        return trace_service_pb2.ExportTraceServiceResponse()


class Spans(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path.split("?")[0] != "/api/spans":
            self.send_error(404, "GET /api/spans")
            return
        with LOCK:
            body = json.dumps(SPANS).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> None:
    if sys.argv[1:] == ["--check"]:
        urllib.request.urlopen("http://127.0.0.1:16686/api/spans", timeout=2).close()
        return
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(), server)
    server.add_insecure_port("0.0.0.0:4317")
    server.start()
    print("otlp stand-in: OTLP/gRPC on 4317, spans as JSON on http://0.0.0.0:16686/api/spans", flush=True)
    ThreadingHTTPServer(("0.0.0.0", 16686), Spans).serve_forever()


if __name__ == "__main__":
    main()
