"""The codec server speaks Temporal's remote codec protocol over the project's key: the requests the Web UI
and the Temporal CLI send, through a real HTTP endpoint, and `temporal workflow show --codec-endpoint`
against the stack shows a sealed history in the clear."""

import asyncio
import base64
import json
import os
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

from common import codec, codec_server
from orderlife.gateway.v1 import gateway_pb2 as pb
from stack import local
from tests.conftest import venv_bin
from tests.integration.conftest import new_order_id, start_request, wait_review, wait_terminal

pytestmark = pytest.mark.integration
UI_ORIGIN = "http://127.0.0.1:8233"
PLAIN = {
    "metadata": {"encoding": base64.b64encode(b"json/plain").decode()},
    "data": base64.b64encode(json.dumps({"line1": "1 Loop Rd"}).encode()).decode(),
}


@pytest.fixture
def endpoint():
    key = base64.b64decode(codec.new_key())
    server = codec_server.serve(f"127.0.0.1:{local.free_port()}", key, token="s3cret", origins=(UI_ORIGIN,))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def post(url: str, body: dict, **headers) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "X-Namespace": "default", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, dict(answer.headers), json.loads(answer.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read() or b"{}")


def test_encode_then_decode_round_trips_as_the_web_ui_asks(endpoint):
    auth = {"Authorization": "Bearer s3cret", "Origin": UI_ORIGIN}
    status, headers, sealed = post(f"{endpoint}/encode", {"payloads": [PLAIN]}, **auth)
    assert status == 200 and headers["Access-Control-Allow-Origin"] == UI_ORIGIN
    [payload] = sealed["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"binary/encrypted"
    assert b"Loop" not in base64.b64decode(payload["data"])
    # The Web UI asks for /decode?preserveStorageRefs=true.
    status, _, opened = post(f"{endpoint}/decode?preserveStorageRefs=true", sealed, **auth)
    assert status == 200 and opened == {"payloads": [PLAIN]}


def test_the_browser_preflight_is_answered_for_the_ui_origin_only(endpoint):
    for origin, allowed in ((UI_ORIGIN, True), ("http://evil.example", False)):
        request = urllib.request.Request(
            f"{endpoint}/decode",
            method="OPTIONS",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
            },
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert answer.status == 204
            assert (answer.headers.get("Access-Control-Allow-Origin") == origin) is allowed
            if allowed:
                assert "x-namespace" in answer.headers["Access-Control-Allow-Headers"].lower()


def test_a_wrong_token_or_a_bad_body_is_refused(endpoint):
    assert post(f"{endpoint}/decode", {"payloads": [PLAIN]})[0] == 401
    assert post(f"{endpoint}/decode", {"payloads": [PLAIN]}, Authorization="Bearer nope")[0] == 401
    assert post(f"{endpoint}/decode", {"payloads": "x"}, Authorization="Bearer s3cret")[0] == 400
    assert post(f"{endpoint}/other", {}, Authorization="Bearer s3cret")[0] == 404


async def test_temporal_workflow_show_with_the_codec_endpoint_shows_the_plain_address(stack):
    key = base64.b64decode(os.environ["PAYLOAD_KEY"])
    server = codec_server.serve(f"127.0.0.1:{local.free_port()}", key)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    order_id = new_order_id("codec")
    stack.flaky.script(order_id)
    await stack.gateway.StartOrder(start_request(order_id))
    await wait_review(stack, order_id)
    await stack.gateway.CancelOrder(pb.CancelOrderRequest(order_id=order_id))
    await wait_terminal(stack, order_id)
    show = [
        venv_bin("temporal"),
        "workflow",
        "show",
        "-w",
        f"order-{order_id}",
        "--detailed",
        "--address",
        stack.gateway_settings.temporal.address,
    ]
    try:
        sealed = await asyncio.to_thread(subprocess.run, show, capture_output=True, text=True, timeout=30)
        decoded = await asyncio.to_thread(
            subprocess.run,
            show + ["--codec-endpoint", f"http://127.0.0.1:{server.server_address[1]}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        server.shutdown()
    assert sealed.returncode == 0 and decoded.returncode == 0, sealed.stderr + decoded.stderr
    assert "1 Loop Rd" not in sealed.stdout
    assert "1 Loop Rd" in decoded.stdout, decoded.stdout[-3000:]
