"""Who may call the gateway, and how much: a bearer token, TLS, and a request-rate bound."""

from __future__ import annotations

import hmac
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import grpc
from google.rpc import status_pb2

from gateway import errors

HEALTH_PREFIX = "/grpc.health.v1.Health/"
Request = TypeVar("Request")
Response = TypeVar("Response")


class Guard(grpc.aio.ServerInterceptor):
    """Refuses calls without the token (UNAUTHENTICATED) and calls over the rate (RESOURCE_EXHAUSTED).

    Health checks pass unguarded, so orchestrators can probe without the token.
    """

    def __init__(self, token: str, max_rps: float):
        self.expected = f"Bearer {token}".encode() if token else None
        self.max_rps = max_rps
        self.tokens = max_rps
        self.refilled = time.monotonic()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Request, Response] | None]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Request, Response] | None:
        if details.method.startswith(HEALTH_PREFIX):
            return await continuation(details)
        if self.expected is not None and not self._authorized(details.invocation_metadata or (), self.expected):
            return _refusal(
                await continuation(details),
                errors.make(
                    grpc.StatusCode.UNAUTHENTICATED, "missing or wrong 'authorization: Bearer <token>' metadata"
                ),
            )
        if not self._take():
            return _refusal(
                await continuation(details),
                errors.retry_later(
                    f"more than {self.max_rps:g} requests a second; slow down", grpc.StatusCode.RESOURCE_EXHAUSTED
                ),
            )
        return await continuation(details)

    @staticmethod
    def _authorized(metadata: tuple[tuple[str, str | bytes], ...], expected: bytes) -> bool:
        values = [v for k, v in metadata if k.lower() == "authorization"]
        return len(values) == 1 and hmac.compare_digest(
            values[0].encode() if isinstance(values[0], str) else values[0], expected
        )

    def _take(self) -> bool:
        if self.max_rps <= 0:
            return True
        now = time.monotonic()
        self.tokens = min(self.max_rps, self.tokens + (now - self.refilled) * self.max_rps)
        self.refilled = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _refusal(
    handler: grpc.RpcMethodHandler[Request, Response] | None, refused: status_pb2.Status
) -> grpc.RpcMethodHandler[Request, Response] | None:
    """A handler of the same shape as the refused one that only aborts with `refused` (a google.rpc.Status)."""
    if handler is None:
        return None

    async def unary(request: object, context: grpc.aio.ServicerContext[Request, Response]) -> None:
        await context.abort_with_status(errors.as_grpc(refused))

    async def stream(request: object, context: grpc.aio.ServicerContext[Request, Response]) -> AsyncIterator[None]:
        await context.abort_with_status(errors.as_grpc(refused))
        yield  # pragma: no cover - makes this an async generator

    # The request is never parsed: a refused caller's bytes cost nothing, and bytes that are no request are
    # refused the same way rather than failing to parse (INTERNAL).
    deserializer, serializer = None, handler.response_serializer
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary, deserializer, serializer)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(stream, deserializer, serializer)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary, deserializer, serializer)
    return grpc.stream_stream_rpc_method_handler(stream, deserializer, serializer)


def server_credentials(cert_file: str, key_file: str) -> grpc.ServerCredentials | None:
    if not cert_file and not key_file:
        return None
    if not (cert_file and key_file):
        raise SystemExit("set both GATEWAY_TLS_CERT and GATEWAY_TLS_KEY, or neither")
    return grpc.ssl_server_credentials([(Path(key_file).read_bytes(), Path(cert_file).read_bytes())])
