"""grpc.health.v1 for the workers (the gateway serves it on its own port), a probe for HEALTHCHECKs, and how
long a service waits between tries of a dependency that is not up yet.

    python -m common.health HOST:PORT    exits 0 when the server there answers SERVING, 1 otherwise
"""

import sys

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


async def serve(listen: str) -> tuple[grpc.aio.Server, health.aio.HealthServicer]:
    """A health-only gRPC server; it says NOT_SERVING until the caller sets SERVING."""
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    server.add_insecure_port(listen)
    await server.start()
    await servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    return server, servicer


def backoff(attempt: int) -> float:
    """Seconds to wait before trying a dependency again: 0.5, 1, 2, 4, then 5 s."""
    return min(0.5 * 2.0 ** (attempt - 1), 5.0)


def probe(address: str, timeout: float = 2.0) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            stub = health_pb2_grpc.HealthStub(channel)
            # types-grpcio-health-checking declares HealthStub without the methods its __init__ sets.
            check = stub.Check  # type: ignore[attr-defined]
            answer: health_pb2.HealthCheckResponse = check(health_pb2.HealthCheckRequest(), timeout=timeout)
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    sys.exit(0 if probe(sys.argv[1]) else 1)
