"""`orders`: the gateway from a terminal, over the generated client stubs.

orders start o-1 --item ABC:2 --name Ada --line1 "1 Loop Rd" --city Springfield --postal-code 12345 --country US
orders approve o-1 | reject o-1 --reason "fraud" | cancel o-1 --reason "changed mind"
orders address o-1 --name Ada --line1 "2 New St" --city Springfield --postal-code 12345 --country US
orders status o-1 | watch o-1 | list --state AWAITING_REVIEW
orders status o-1 -o json    # the response as grpcurl prints it
"""

import argparse
import math
import os
import queue
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from client import connection, desk
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc

EXIT = {"ok": 0, "rpc": 1, "usage": 2, "unreachable": 3, "local": 4, "interrupted": 130, "closed": 141}
# The states an order ends in.
ENDED = {pb.ORDER_STATE_COMPLETED, pb.ORDER_STATE_CANCELLED, pb.ORDER_STATE_REJECTED, pb.ORDER_STATE_FAILED}
STATES = [name.removeprefix("ORDER_STATE_") for name in pb.OrderState.keys() if name != "ORDER_STATE_UNSPECIFIED"]
# What a read shows (IN_PROGRESS is only listed), and what a listing takes (the finer states are only read).
SHOWN = [name for name in STATES if name != "IN_PROGRESS"]
LISTED = ["IN_PROGRESS", "AWAITING_REVIEW", "COMPLETED", "CANCELLED", "REJECTED", "FAILED"]
EPILOG = f"""\
exit codes:
  {EXIT["ok"]:<3}  done
  {EXIT["rpc"]:<3}  the gateway answered with a gRPC error, printed as CODE: details (e.g. NOT_FOUND: ...)
  {EXIT["usage"]:<3}  bad command line
  {EXIT["unreachable"]:<3}  the gateway could not be reached (UNAVAILABLE or DEADLINE_EXCEEDED while connecting)
  {EXIT["local"]:<3}  a local file could not be read (--tls-ca)
  {EXIT["interrupted"]:<3}  interrupted (Ctrl-C), watch included
  {EXIT["closed"]:<3}  the output was closed early (e.g. piped into head); as a SIGPIPE would, silently

environment:
  GATEWAY_ADDRESS  default for --gateway
  GATEWAY_TOKEN    default for --token
  GATEWAY_TLS_CA   default for --tls-ca
"""


_BEFORE_DECISION = (pb.ORDER_STATE_RECEIVED, pb.ORDER_STATE_VALIDATING, pb.ORDER_STATE_AWAITING_REVIEW)
# The answers that carry one order (all but ListOrders').
OrderResponse = (
    pb.StartOrderResponse
    | pb.ApproveOrderResponse
    | pb.RejectOrderResponse
    | pb.CancelOrderResponse
    | pb.UpdateAddressResponse
    | pb.GetOrderResponse
    | pb.WatchOrderResponse
)


def _time(ts: Timestamp) -> str:
    return ts.ToDatetime(UTC).strftime("%H:%M:%S.%f")[:-3] if ts.seconds else "-"


def _state(value: pb.OrderState.ValueType) -> str:
    return pb.OrderState.Name(value).removeprefix("ORDER_STATE_")


def _address(a: pb.Address) -> str:
    return ", ".join(p for p in (a.name, a.line1, a.line2, a.city, a.postal_code, a.country) if p)


def render(order: pb.Order) -> str:
    """A terminal view of one order: state, step timeline, errors, money and parcel, time left."""
    now = datetime.now(UTC)
    lines = [f"order {order.order_id}  {_state(order.state)}  step={order.current_step or '-'}"]
    if order.ended_at.seconds:
        took = (order.ended_at.ToDatetime(UTC) - order.started_at.ToDatetime(UTC)).total_seconds()
        lines.append(f"  ended in {took:.2f}s" + (f": {order.reason}" if order.reason else ""))
    elif order.deadline.seconds:
        left = (order.deadline.ToDatetime(UTC) - now).total_seconds()
        lines.append(f"  {max(left, 0):.1f}s left of the 15s budget")
        review_left = (order.review_deadline.ToDatetime(UTC) - now).total_seconds()
        if order.review_deadline.seconds and order.state in _BEFORE_DECISION:
            lines.append(
                f"  review closes in {review_left:.1f}s: approve before then ({_time(order.review_deadline)})"
                if review_left > 0
                else "  the review window has closed"
            )
    for step in order.steps:
        duration = ""
        if step.started_at.seconds and step.ended_at.seconds:
            duration = f"{(step.ended_at.ToDatetime() - step.started_at.ToDatetime()).total_seconds():.2f}s"
        error = f"  ({step.error})" if step.error else ""
        attempts = f"attempts={step.attempts}" if step.attempts else ""
        lines.append(f"  {step.name:<16} {step.status:<8} {attempts:<12} {duration}{error}")
    if order.payment.payment_id:
        lines.append(f"  payment {order.payment.payment_id}: {order.payment.status} {order.payment.amount}")
    if order.shipment.status:
        lines.append(f"  shipment: {order.shipment.status} to {_address(order.shipment.address)}")
    lines.append(f"  address: {_address(order.address)}")
    for err in order.recent_errors[-5:]:
        lines.append(f"  ! {_time(err.time)} {err.step} attempt {err.attempt} {err.kind}: {err.message}")
    return "\n".join(lines)


def _address_args(p: argparse.ArgumentParser) -> None:
    for name in ("name", "line1", "city", "postal-code", "country"):
        p.add_argument(f"--{name}", required=True, help=f"shipping address: {name.replace('-', ' ')}")
    p.add_argument("--line2", default="", help="shipping address: second line (optional)")


def _address_msg(args: argparse.Namespace) -> pb.Address:
    return pb.Address(
        name=args.name,
        line1=args.line1,
        line2=args.line2,
        city=args.city,
        postal_code=args.postal_code,
        country=args.country,
    )


def _item(text: str) -> pb.Item:
    sku, _, qty = text.partition(":")
    try:
        return pb.Item(sku=sku, qty=int(qty or 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SKU or SKU:QTY with a whole-number QTY") from None


def _state_of(names: list[str]) -> Callable[[str], pb.OrderState.ValueType]:
    def parse(text: str) -> pb.OrderState.ValueType:
        name = text.upper().removeprefix("ORDER_STATE_")
        if name not in names:
            raise argparse.ArgumentTypeError(f"unknown state {text!r}; one of {', '.join(names)}")
        return pb.OrderState.Value(f"ORDER_STATE_{name}")

    return parse


def _seconds(text: str) -> float:
    try:
        if 0 < float(text) < math.inf:
            return float(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line on stderr (`orders COMMAND --help` shows the usage)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT["usage"], f"{self.prog}: {message} (see {self.prog} --help)\n")


def _global_flags(defaults: bool) -> _Parser:
    """The flags every command takes, before or after its name.

    The subcommands' copies default to SUPPRESS, so a flag given before the command is not
    overwritten by the subcommand's default.
    """

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    p = _Parser(add_help=False)
    p.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        default=default(os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:50051")),
        help="the gateway's address (env GATEWAY_ADDRESS; default 127.0.0.1:50051)",
    )
    p.add_argument(
        "--token",
        default=default(os.environ.get("GATEWAY_TOKEN", "")),
        help="bearer token sent with every call (env GATEWAY_TOKEN)",
    )
    p.add_argument(
        "--tls-ca",
        metavar="FILE",
        default=default(os.environ.get("GATEWAY_TLS_CA", "")),
        help="CA or server certificate file; switches TLS on (env GATEWAY_TLS_CA)",
    )
    p.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=_seconds,
        default=default(30.0),
        help="seconds to connect, then per call (watch: for the whole stream; default 30)",
    )
    p.add_argument(
        "-o",
        "--output",
        choices=["text", "json"],
        default=default("text"),
        help="text for people (default) or json: each response as grpcurl prints it",
    )
    return p


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="orders",
        description="Order lifecycle gateway client",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[_global_flags(True)],
    )
    common = [_global_flags(False)]
    sub = p.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="orders COMMAND --help lists the command's flags"
    )

    def command(name: str, help: str) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help, description=help, parents=common)
        if name != "list":
            cmd.add_argument("order_id", help="the order's id")
        return cmd

    start = command("start", "start an order")
    start.add_argument(
        "--item",
        action="append",
        type=_item,
        required=True,
        metavar="SKU[:QTY]",
        help="an item and its quantity (default 1); repeatable",
    )
    start.add_argument("--payment-id", help="defaults to pay-<order_id>")
    start.add_argument(
        "--watch",
        action="store_true",
        help="then watch it as `watch` does (at a terminal: one key approves or rejects it in review)",
    )
    start.add_argument(
        "--reviewer", default=os.environ.get("USER", "cli"), help="who decides with --watch (default: $USER)"
    )
    _address_args(start)
    approve = command("approve", "approve an order awaiting review")
    reject = command("reject", "reject an order awaiting review")
    for cmd in (approve, reject):
        cmd.add_argument("--reviewer", default=os.environ.get("USER", "cli"), help="who decided (default: $USER)")
    reject.add_argument("--reason", default="", help="why, recorded on the order")
    command("cancel", "cancel an order before dispatch").add_argument(
        "--reason", default="", help="why, recorded on the order"
    )
    _address_args(command("address", "change the shipping address before dispatch"))
    command("status", "show an order")
    command(
        "watch",
        "show an order on every change until it ends; at a terminal, when it awaits review, "
        "a key approves (a) or rejects (r) it before the countdown runs out",
    ).add_argument("--reviewer", default=os.environ.get("USER", "cli"), help="who decides (default: $USER)")
    wait = command("wait", "wait until an order is in a state (for scripts: approve once it awaits review)")
    wait.add_argument(
        "--for",
        dest="state",
        type=_state_of(SHOWN),
        required=True,
        metavar="STATE",
        help=f"the state to wait for, one of {', '.join(SHOWN)}",
    )
    desk = sub.add_parser(
        "review",
        parents=common,
        help="the review desk: every order awaiting review, live",
        description="Every order awaiting review, pushed by the gateway the moment it starts "
        "waiting, with its items, amount, address and seconds left. At a terminal: "
        "a approves, r rejects the selected order, j/k select, q quits. Without a "
        "terminal it prints each order that starts waiting.",
    )
    desk.add_argument("--reviewer", default=os.environ.get("USER", "cli"), help="who decides (default: $USER)")
    decide_all = desk.add_mutually_exclusive_group()
    decide_all.add_argument(
        "--approve-all",
        action="store_const",
        const="approve",
        dest="auto",
        help="approve every order as it starts waiting (no terminal needed)",
    )
    decide_all.add_argument(
        "--reject-all",
        action="store_const",
        const="reject",
        dest="auto",
        help="reject every order as it starts waiting",
    )
    listing = command("list", "list orders, newest first")
    listing.add_argument(
        "--state",
        type=_state_of(LISTED),
        default=pb.ORDER_STATE_UNSPECIFIED,
        metavar="STATE",
        help=f"only orders in this state, one of {', '.join(LISTED)} (default: all)",
    )
    listing.add_argument("--page-size", type=int, default=20, help="at most this many orders (default 20, at most 100)")
    listing.add_argument(
        "--page-token", default="", help="the next_page_token a previous list printed, for the next page"
    )
    return p


class _Gateway:
    """The stub, with the token and a deadline on every call."""

    def __init__(self, stub: pb_grpc.OrderGatewayServiceStub, token: str, timeout: float):
        self.stub, self.metadata, self.timeout = stub, connection.call_metadata(token), timeout

    def __getattr__(self, name: str) -> Callable[[Message], Any]:
        method = getattr(self.stub, name)
        return lambda request: method(request, metadata=self.metadata, timeout=self.timeout)


def _call(args: argparse.Namespace) -> tuple[str, Message]:
    """The RPC a command stands for, and its request."""
    if args.command == "start":
        return "StartOrder", pb.StartOrderRequest(
            order_id=args.order_id,
            items=args.item,
            payment_id=args.payment_id or f"pay-{args.order_id}",
            address=_address_msg(args),
        )
    if args.command == "approve":
        return "ApproveOrder", pb.ApproveOrderRequest(order_id=args.order_id, reviewer=args.reviewer)
    if args.command == "reject":
        return "RejectOrder", pb.RejectOrderRequest(order_id=args.order_id, reviewer=args.reviewer, reason=args.reason)
    if args.command == "cancel":
        return "CancelOrder", pb.CancelOrderRequest(order_id=args.order_id, reason=args.reason)
    if args.command == "address":
        return "UpdateAddress", pb.UpdateAddressRequest(order_id=args.order_id, address=_address_msg(args))
    if args.command == "status":
        return "GetOrder", pb.GetOrderRequest(order_id=args.order_id)
    if args.command == "watch":
        return "WatchOrder", pb.WatchOrderRequest(order_id=args.order_id)
    return "ListOrders", pb.ListOrdersRequest(state=args.state, page_size=args.page_size, page_token=args.page_token)


def _text(resp: pb.ListOrdersResponse | OrderResponse) -> str:
    if isinstance(resp, pb.ListOrdersResponse):
        rows = [("ORDER_ID", "STATE", "STARTED", "ENDED", "REASON")]
        rows += [(o.order_id, _state(o.state), _time(o.started_at), _time(o.ended_at), o.reason) for o in resp.orders]
        lines = [f"{i:<24} {s:<16} {b:<12}  {e:<12}  {r}".rstrip() for i, s, b, e, r in rows]
        if resp.next_page_token:
            lines.append(f"more: --page-token {resp.next_page_token}")
        return "\n".join(lines)
    already = isinstance(resp, pb.StartOrderResponse) and resp.already_existed
    return ("already started\n" if already else "") + render(resp.order)


class WaitedInVain(Exception):
    """The order ended without reaching the state waited for."""


def run(args: argparse.Namespace, stub: _Gateway) -> None:
    """One command; `stub` is a _Gateway (the stub with the token and a deadline on every call)."""
    if args.command == "review":  # open-ended: no deadline on the stream
        waiting = stub.stub.WatchReviews(pb.WatchReviewsRequest(), metadata=stub.metadata)
        desk.desk(waiting, stub, args.reviewer, args.auto or "")
        return
    if args.command == "wait" and args.state in ENDED:
        # An end state: one long poll until the order ends, nothing polled.
        ended = stub.WaitOrder(pb.WaitOrderRequest(order_id=args.order_id)).order
        if ended.state == args.state:
            print(f"{args.order_id} is {_state(args.state)}")
            return
        raise WaitedInVain(f"order {args.order_id} ended {_state(ended.state)}, not {_state(args.state)}")
    if args.command == "wait":
        for update in stub.WatchOrder(pb.WatchOrderRequest(order_id=args.order_id)):
            if update.order.state == args.state:
                print(f"{args.order_id} is {_state(args.state)}")
                return
        raise WaitedInVain(
            f"order {args.order_id} ended {_state(update.order.state)} before it was {_state(args.state)}"
        )
    if args.command != "watch" or args.output == "json":
        method, request = _call(args)
        answer = getattr(stub, method)(request)
        for resp in answer if args.command == "watch" else [answer]:
            if args.output == "json":
                print(json_format.MessageToJson(resp, indent=2, preserving_proto_field_name=True), flush=True)
            else:
                print(_text(resp), end="\n\n" if args.command == "watch" else "\n", flush=True)
    if (args.command == "watch" and args.output == "text") or (args.command == "start" and args.watch):
        ask = args.output == "text" and desk.at_a_terminal()
        show = (
            (lambda order: print(render(order), end="\n\n", flush=True))
            if args.output == "text"
            else (
                lambda order: print(
                    json_format.MessageToJson(order, indent=2, preserving_proto_field_name=True), flush=True
                )
            )
        )
        desk.watch(stub, args.order_id, show, ask, args.reviewer)


def _connect(channel: grpc.Channel, timeout: float) -> grpc.ChannelConnectivity | None:
    """How the first connection attempt ended (READY or TRANSIENT_FAILURE), None if it outlasted the timeout.

    Only then can an UNAVAILABLE from an unreachable gateway be told from one the gateway sent
    (Temporal or Postgres down).
    """
    settled: queue.Queue[grpc.ChannelConnectivity] = queue.Queue()

    def seen(state: grpc.ChannelConnectivity) -> None:
        if state in (grpc.ChannelConnectivity.READY, grpc.ChannelConnectivity.TRANSIENT_FAILURE):
            settled.put(state)

    channel.subscribe(seen, try_to_connect=True)
    try:
        return settled.get(timeout=timeout)
    except queue.Empty:
        return None
    finally:
        channel.unsubscribe(seen)


def _error_details(err: grpc.RpcError) -> str:
    """The google.rpc details a gateway error carries, for the end of its line: the reason of a refusal and
    when to try again (the field violations are in the message already)."""
    text = ""
    for detail in connection.details_of(err).values():
        if isinstance(detail, error_details_pb2.ErrorInfo):
            text += f" [reason {detail.reason}]"
        elif isinstance(detail, error_details_pb2.RetryInfo):
            text += f" [retry in {detail.retry_delay.ToTimedelta().total_seconds():g}s]"
    return text


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        channel = connection.channel(args.gateway, args.tls_ca)
    except OSError as err:
        print(f"cannot read --tls-ca file {args.tls_ca!r}: {err.strerror or err}", file=sys.stderr)
        return EXIT["local"]
    with channel:
        try:
            connected = _connect(channel, args.timeout)
            if connected is None:
                print(
                    f"DEADLINE_EXCEEDED: no connection to the gateway at {args.gateway} within {args.timeout:g}s",
                    file=sys.stderr,
                )
                return EXIT["unreachable"]
            run(args, _Gateway(pb_grpc.OrderGatewayServiceStub(channel), args.token, args.timeout))
        except grpc.RpcError as err:
            print(
                f"{err.code().name}: {' '.join((err.details() or '').splitlines())}{_error_details(err)}",
                file=sys.stderr,
            )
            lost = err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
            return EXIT["unreachable" if lost and connected is not grpc.ChannelConnectivity.READY else "rpc"]
        except WaitedInVain as err:
            print(f"FAILED_PRECONDITION: {err}", file=sys.stderr)
            return EXIT["rpc"]
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT["closed"]
        except KeyboardInterrupt:
            print("\ninterrupted" if sys.stdout.isatty() else "interrupted", file=sys.stderr)
            return EXIT["interrupted"]
    return EXIT["ok"]


if __name__ == "__main__":
    sys.exit(main())
