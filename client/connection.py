"""How a client reaches the gateway: a channel (TLS when given a CA), the bearer token's call metadata, and the
google.rpc details a refusal carries, read back."""

from pathlib import Path
from typing import Literal, overload

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@overload
def channel(address: str, ca_file: str = "", aio: Literal[False] = False) -> grpc.Channel: ...
@overload
def channel(address: str, ca_file: str = "", *, aio: Literal[True]) -> grpc.aio.Channel: ...
def channel(address: str, ca_file: str = "", aio: bool = False) -> grpc.Channel | grpc.aio.Channel:
    """A channel to the gateway: TLS when a CA file is given (the server's certificate or its issuer)."""
    if ca_file:
        credentials = grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes())
        return grpc.aio.secure_channel(address, credentials) if aio else grpc.secure_channel(address, credentials)
    return grpc.aio.insecure_channel(address) if aio else grpc.insecure_channel(address)


def call_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def details_of(err: grpc.RpcError) -> dict[str, Message]:
    """What a caller reads back: the google.rpc details a gateway error carries, by kind ("ErrorInfo",
    "RetryInfo", "BadRequest"), in the order the gateway put them."""
    if not isinstance(err, (grpc.Call, grpc.aio.AioRpcError)):  # a sync stub raises a Call, an aio stub neither
        return {}
    try:
        # Typed for a Call; it reads only code(), details() and trailing_metadata(), which an AioRpcError has too.
        status = rpc_status.from_call(err)  # type: ignore[arg-type]
    except (AttributeError, ValueError):
        return {}
    found: dict[str, Message] = {}
    for packed in status.details if status else []:
        for kind in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo, error_details_pb2.BadRequest):
            if packed.Is(kind.DESCRIPTOR):
                found[kind.__name__] = kind()
                packed.Unpack(found[kind.__name__])
    return found
