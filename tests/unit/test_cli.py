"""The `orders` CLI against an in-process fake gateway: output formats, flag placement, errors and exit codes."""

import argparse
import json
import socket
import subprocess
import sys
import time
from concurrent import futures

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from client import cli
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc


def _order(order_id: str, state: pb.OrderState.ValueType = pb.ORDER_STATE_AWAITING_REVIEW) -> pb.Order:
    return pb.Order(
        order_id=order_id,
        workflow_id=f"order-{order_id}",
        state=state,
        current_step="Review",
        items=[pb.Item(sku="ABC", qty=2)],
        address=pb.Address(name="Ada", line1="1 Loop Rd", city="Springfield", postal_code="12345", country="US"),
    )


class FakeGateway(pb_grpc.OrderGatewayServiceServicer):
    def __init__(self):
        self.metadata, self.list_requests = [], []

    def GetOrder(self, request, context):
        self.metadata.append(dict(context.invocation_metadata()))
        if request.order_id == "missing":
            context.abort(grpc.StatusCode.NOT_FOUND, f"order {request.order_id!r} not found")
        return pb.GetOrderResponse(order=_order(request.order_id))

    def ListOrders(self, request, context):
        self.list_requests.append(request)
        updated = Timestamp(seconds=1_700_000_000, nanos=123_000_000)
        return pb.ListOrdersResponse(
            orders=[
                pb.ListOrdersResponse.Summary(order_id="o-1", state=pb.ORDER_STATE_AWAITING_REVIEW, started_at=updated),
                pb.ListOrdersResponse.Summary(
                    order_id="o-2", state=pb.ORDER_STATE_REJECTED, reason="fraud", started_at=updated
                ),
            ][: request.page_size or 20]
        )

    def WatchOrder(self, request, context):
        yield pb.WatchOrderResponse(order=_order(request.order_id))
        if request.order_id == "slow":
            time.sleep(1)
        yield pb.WatchOrderResponse(order=_order(request.order_id, pb.ORDER_STATE_COMPLETED))


@pytest.fixture(scope="module")
def fake():
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    # The stubs declare every method abstract; the generated base class answers UNIMPLEMENTED for those not here.
    servicer = FakeGateway()  # type: ignore[abstract]
    pb_grpc.add_OrderGatewayServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


@pytest.fixture
def gateway(fake):
    return fake[0]


@pytest.fixture(autouse=True)
def no_gateway_environment(monkeypatch):
    """The defaults come from the environment; a developer's own must not leak in."""
    for name in ("GATEWAY_ADDRESS", "GATEWAY_TOKEN", "GATEWAY_TLS_CA"):
        monkeypatch.delenv(name, raising=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _json_documents(text: str) -> list[dict]:
    decoder, docs, rest = json.JSONDecoder(), [], text.strip()
    while rest:
        doc, end = decoder.raw_decode(rest)
        docs.append(doc)
        rest = rest[end:].lstrip()
    return docs


def _one_line(err: str) -> str:
    assert err.endswith("\n") and err.count("\n") == 1, err
    return err.strip()


def test_status_json_is_as_grpcurl_prints_it(gateway, capsys):
    assert cli.main(["--gateway", gateway, "-o", "json", "status", "o-1"]) == cli.EXIT["ok"]
    doc = json.loads(capsys.readouterr().out)
    assert doc["order"]["order_id"] == "o-1"
    assert doc["order"]["state"] == "ORDER_STATE_AWAITING_REVIEW"
    assert doc["order"]["address"]["postal_code"] == "12345"
    assert (
        "reason" not in doc["order"] and "orderId" not in doc["order"]
    )  # defaults left out, field names as in the proto


@pytest.mark.parametrize(
    "argv",
    [
        ["--gateway", "{gw}", "--output", "json", "--token", "t-1", "status", "o-1"],
        ["status", "o-1", "--gateway", "{gw}", "--output", "json", "--token", "t-1"],
        ["--gateway", "{gw}", "status", "o-1", "-o", "json", "--token", "t-1"],
        ["-o", "json", "--token", "t-1", "status", "--gateway", "{gw}", "o-1"],
    ],
    ids=["before", "after", "mixed", "between"],
)
def test_global_flags_work_before_and_after_the_command(fake, capsys, argv):
    address, servicer = fake
    assert cli.main([a.format(gw=address) for a in argv]) == cli.EXIT["ok"]
    assert json.loads(capsys.readouterr().out)["order"]["order_id"] == "o-1"
    assert servicer.metadata[-1]["authorization"] == "Bearer t-1"


def test_status_text_is_the_rendered_order(gateway, capsys):
    assert cli.main(["--gateway", gateway, "status", "o-1"]) == 0
    assert capsys.readouterr().out == cli.render(_order("o-1")) + "\n"


def test_watch_json_prints_one_object_per_update(gateway, capsys):
    assert cli.main(["watch", "o-1", "--gateway", gateway, "-o", "json"]) == 0
    docs = _json_documents(capsys.readouterr().out)
    assert [d["order"]["state"] for d in docs] == ["ORDER_STATE_AWAITING_REVIEW", "ORDER_STATE_COMPLETED"]


def test_list_text_has_a_header_and_a_column_per_field(gateway, capsys):
    assert cli.main(["--gateway", gateway, "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ORDER_ID", "STATE", "STARTED", "ENDED", "REASON"]
    assert lines[1].split() == ["o-1", "AWAITING_REVIEW", "22:13:20.123", "-"]
    assert lines[2].split() == ["o-2", "REJECTED", "22:13:20.123", "-", "fraud"]
    assert lines[2].index("fraud") == lines[0].index("REASON")


def test_list_json_is_the_whole_response(fake, capsys):
    address, servicer = fake
    assert cli.main(["--gateway", address, "list", "--state", "awaiting_review", "-o", "json"]) == 0
    assert servicer.list_requests[-1] == pb.ListOrdersRequest(state=pb.ORDER_STATE_AWAITING_REVIEW, page_size=20)
    doc = json.loads(capsys.readouterr().out)
    assert [o["order_id"] for o in doc["orders"]] == ["o-1", "o-2"]
    assert doc["orders"][1] == {
        "order_id": "o-2",
        "state": "ORDER_STATE_REJECTED",
        "reason": "fraud",
        "started_at": "2023-11-14T22:13:20.123Z",
    }


def test_grpc_error_is_one_line_with_its_code(gateway, capsys):
    assert cli.main(["--gateway", gateway, "status", "missing", "-o", "json"]) == cli.EXIT["rpc"]
    out, err = capsys.readouterr()
    assert out == ""
    assert _one_line(err) == "NOT_FOUND: order 'missing' not found"


def test_ctrl_c_is_one_line_and_its_own_code(gateway, capsys, monkeypatch):
    def interrupted(args, stub):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
    assert cli.main(["--gateway", gateway, "watch", "o-1"]) == cli.EXIT["interrupted"]
    assert _one_line(capsys.readouterr().err) == "interrupted"


def test_output_closed_early_ends_quietly(gateway):
    watch = subprocess.Popen(
        [sys.executable, "-m", "client.cli", "--gateway", gateway, "watch", "slow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert watch.stdout is not None and watch.stderr is not None
    assert watch.stdout.readline().startswith("order slow")
    watch.stdout.close()
    assert watch.wait(timeout=30) == cli.EXIT["closed"]
    assert watch.stderr.read() == ""


def test_unreachable_gateway_is_one_line_and_its_own_code(capsys):
    assert (
        cli.main(["--gateway", f"127.0.0.1:{_free_port()}", "--timeout", "1", "status", "o-1"])
        == cli.EXIT["unreachable"]
    )
    assert _one_line(capsys.readouterr().err).startswith("UNAVAILABLE: ")


def test_gateway_that_never_answers_is_unreachable_within_the_timeout(capsys):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        assert cli.main(["status", "o-1", "--gateway", address, "--timeout", "0.5"]) == cli.EXIT["unreachable"]
    assert _one_line(capsys.readouterr().err).startswith("DEADLINE_EXCEEDED: ")


def test_unreadable_ca_file_is_a_local_problem_naming_the_file(tmp_path, capsys):
    missing = str(tmp_path / "missing.pem")
    assert cli.main(["--tls-ca", missing, "status", "o-1"]) == cli.EXIT["local"]
    assert missing in _one_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["list", "--state", "bogus"], "AWAITING_REVIEW"),
        (
            [
                "start",
                "o-1",
                "--item",
                "ABC:x",
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
            ],
            "ABC:x",
        ),
        (["status", "o-1", "-o", "yaml"], "json"),
        (["status", "o-1", "--timeout", "0"], "seconds"),
    ],
)
def test_bad_values_are_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        cli.main(argv)
    assert stopped.value.code == cli.EXIT["usage"]
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_help_lists_exit_codes_environment_and_states(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    listed = {int(line.split()[0]) for line in out.split("exit codes:")[1].splitlines() if line[:5].strip().isdigit()}
    assert listed == set(cli.EXIT.values())
    assert all(name in out for name in ("GATEWAY_ADDRESS", "GATEWAY_TOKEN", "GATEWAY_TLS_CA"))
    with pytest.raises(SystemExit):
        cli.main(["list", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(state in out for state in cli.LISTED) and "CHARGING" not in out, "list takes the listed states"


def test_every_flag_has_help():
    p = cli.parser()
    subparsers = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    for parser in [p, *subparsers.choices.values()]:
        for action in parser._actions:
            assert action.help, f"{parser.prog} {action.dest} has no help"
