"""Who may call the gateway: a bearer token on every RPC but health, TLS, and bounded size and rate."""

import asyncio
import base64
import dataclasses
import datetime
import functools
import ipaddress
import os
import threading

import grpc
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from temporalio.client import Client

from client import cli, connection
from common import codec_server
from gateway import server
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc
from stack import local
from tests.integration.conftest import new_order_id, start_request, wait_review, wait_terminal

pytestmark = pytest.mark.integration
TOKEN = "s3cret-token"


def self_signed(tmp_path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "orders-gateway")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "gateway.crt", tmp_path / "gateway.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)


@pytest_asyncio.fixture
async def guarded(stack, tmp_path):
    """A second gateway on the same stack, with a token and TLS."""
    cert, key = self_signed(tmp_path)
    settings = dataclasses.replace(stack.gateway_settings, token=TOKEN, tls_cert=cert, tls_key=key)
    grpc_server, port = await server.serve(stack.client, stack.reader, settings)
    yield f"127.0.0.1:{port}", cert
    await grpc_server.stop(0)


async def code_of(call) -> grpc.StatusCode:
    """The status a call ends with; a stream that answers at all counts as OK (a review desk's never ends)."""
    try:
        response = call()
        if hasattr(response, "__aiter__"):
            async for _ in response:
                break
        else:
            await response
    except grpc.aio.AioRpcError as err:
        return err.code()
    return grpc.StatusCode.OK


# Every method of the service, from its descriptor, so a new RPC is covered the day it is added.
EVERY_RPC = [
    (method.name, getattr(pb, method.input_type.name)())
    for method in pb.DESCRIPTOR.services_by_name["OrderGatewayService"].methods
]


def test_every_rpc_is_checked():
    assert {"StartOrder", "WaitOrder", "WatchReviews"} <= {name for name, _ in EVERY_RPC}


async def test_bytes_that_are_no_request_are_refused_for_the_token_before_they_are_parsed(guarded):
    address, cert = guarded
    async with connection.channel(address, cert, aio=True) as channel:
        # Bytes in, bytes out.
        start: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            f"/{server.SERVICE_NAME}/StartOrder"
        )
        for garbage in (os.urandom(64), b"\xff" * 10):
            assert await code_of(functools.partial(start, garbage)) == grpc.StatusCode.UNAUTHENTICATED


async def test_every_rpc_but_health_needs_the_token(guarded):
    address, cert = guarded
    async with connection.channel(address, cert, aio=True) as channel:
        stub = pb_grpc.OrderGatewayServiceStub(channel)
        for name, request in EVERY_RPC:
            rpc = getattr(stub, name)
            assert await code_of(functools.partial(rpc, request)) == grpc.StatusCode.UNAUTHENTICATED, name
            wrong = (("authorization", "Bearer nope"),)
            assert await code_of(functools.partial(rpc, request, metadata=wrong)) == grpc.StatusCode.UNAUTHENTICATED, (
                name
            )
            # With the token the request reaches the gateway, which judges it on its merits.
            right = connection.call_metadata(TOKEN)
            assert await code_of(functools.partial(rpc, request, metadata=right)) in (
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.OK,
            ), name

        # types-grpcio-reflection is wrong twice here: its stub takes no grpc.aio channel (the generated one does),
        # and it imports Incomplete from binascii (an exception class), so ServerReflectionInfo is not callable.
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)  # type: ignore[arg-type]
        listing = reflection_pb2.ServerReflectionRequest(list_services="")
        assert (
            await code_of(lambda: reflection.ServerReflectionInfo(iter([listing])))  # type: ignore[operator]
            == grpc.StatusCode.UNAUTHENTICATED
        )
        # types-grpcio-health-checking declares HealthStub without the methods its __init__ sets (common/health.py).
        health = await health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[attr-defined]
            health_pb2.HealthCheckRequest()
        )
        assert health.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("position", [0, 1, 2])
async def test_token_is_found_wherever_it_sits_among_the_metadata(guarded, position):
    address, cert = guarded
    metadata = [("x-request-id", "r-1"), ("x-client", "test")]
    metadata.insert(position, ("authorization", f"Bearer {TOKEN}"))
    async with connection.channel(address, cert, aio=True) as channel:
        stub = pb_grpc.OrderGatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.GetOrder(pb.GetOrderRequest(order_id=new_order_id("nobody")), metadata=tuple(metadata))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_plaintext_client_cannot_reach_a_tls_gateway(guarded):
    address, _ = guarded
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.OrderGatewayServiceStub(channel)
        call = stub.GetOrder(pb.GetOrderRequest(order_id="o-1"), metadata=connection.call_metadata(TOKEN), timeout=3)
        assert await code_of(lambda: call) == grpc.StatusCode.UNAVAILABLE


async def test_cli_speaks_tls_with_the_token(guarded, stack, capsys):
    address, cert = guarded
    order_id = new_order_id("cli")
    stack.flaky.script(order_id)
    base = ["--gateway", address, "--tls-ca", cert]
    start = [
        "start",
        order_id,
        "--item",
        "ABC:2",
        "--name",
        "Ada",
        "--line1",
        "1 Loop Rd",
        "--city",
        "Springfield",
        "--postal-code",
        "12345",
        "--country",
        "US",
    ]
    assert await asyncio.to_thread(cli.main, base + ["--token", TOKEN] + start) == 0
    assert f"order {order_id}" in capsys.readouterr().out
    assert await asyncio.to_thread(cli.main, base + ["status", order_id]) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err
    await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id, reason="test over"))


async def test_request_rate_is_bounded(stack):
    settings = dataclasses.replace(stack.gateway_settings, max_requests_per_second=5)
    grpc_server, port = await server.serve(stack.client, stack.reader, settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.OrderGatewayServiceStub(channel)
            codes = await asyncio.gather(
                *(code_of(lambda: stub.ListOrders(pb.ListOrdersRequest(page_size=1))) for _ in range(30))
            )
    finally:
        await grpc_server.stop(0)
    assert set(codes) == {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    assert codes.count(grpc.StatusCode.OK) <= 6


async def test_oversized_request_is_refused_and_starts_nothing(stack):
    order_id = new_order_id("big")
    request = start_request(order_id, items=[pb.Item(sku="A" * 1000, qty=1)] * 2000)
    assert await code_of(lambda: stack.gateway.StartOrder(request)) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert await stack.admin.fetchval("SELECT count(*) FROM orders.orders WHERE order_id = $1", order_id) == 0
    assert (
        await code_of(lambda: stack.gateway.GetOrder(pb.GetOrderRequest(order_id=order_id)))
        == grpc.StatusCode.NOT_FOUND
    )


async def test_histories_hold_no_address_or_payment_in_the_clear(stack):
    order_id = new_order_id("sealed")
    stack.flaky.script(order_id)
    address = pb.Address(
        name="Grace Hopper", line1="99 Secret Lane", city="Arlington", postal_code="22201", country="US"
    )
    await stack.gateway.StartOrder(start_request(order_id, address=address, payment_id=f"card-{order_id}"))
    await wait_review(stack, order_id)
    await stack.gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer="test"))
    order = await wait_terminal(stack, order_id)
    assert order.state == pb.ORDER_STATE_COMPLETED and order.address.line1 == "99 Secret Lane"

    temporal_address = stack.client.service_client.config.target_host
    keyless = await Client.connect(temporal_address)
    for workflow_id in (f"order-{order_id}", f"shipment-{order_id}"):
        history = await keyless.get_workflow_handle(workflow_id).fetch_history()
        raw = b"".join(event.SerializeToString() for event in history.events)
        assert len(history.events) > 10
        for secret in (b"Secret Lane", b"Arlington", b"Grace Hopper", f"card-{order_id}".encode()):
            assert secret not in raw, f"{secret!r} in the clear in {workflow_id}'s history"

    # Whoever holds the key reads the history back the Temporal way: the codec server behind the CLI.
    codec = codec_server.serve(f"127.0.0.1:{local.free_port()}", base64.b64decode(os.environ["PAYLOAD_KEY"]))
    threading.Thread(target=codec.serve_forever, daemon=True).start()
    try:
        show = await asyncio.create_subprocess_exec(
            local.binary("temporal"),
            "workflow",
            "show",
            "-w",
            f"order-{order_id}",
            "--detailed",
            "--address",
            temporal_address,
            "--codec-endpoint",
            f"http://127.0.0.1:{codec.server_address[1]}",
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await show.communicate()
    finally:
        codec.shutdown()
    assert show.returncode == 0
    assert b"99 Secret Lane" in out and f"card-{order_id}".encode() in out
