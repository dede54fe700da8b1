"""`orders`: the gateway from a terminal, over the generated client stubs.

    orders start o-1 --item ABC:2 --name Ada --line1 "1 Loop Rd" --city Springfield --postal-code 12345 --country US
    orders approve o-1 | reject o-1 --reason "fraud" | cancel o-1 --reason "changed mind"
    orders address o-1 --name Ada --line1 "2 New St" --city Springfield --postal-code 12345 --country US
    orders status o-1 | watch o-1 | list --state AWAITING_REVIEW
"""

import argparse
import os
import sys
from datetime import datetime, timezone

import grpc

from gateway import security
from orderlife.gateway.v1 import gateway_pb2 as pb
from orderlife.gateway.v1 import gateway_pb2_grpc as pb_grpc


def _time(ts) -> str:
    return ts.ToDatetime(timezone.utc).strftime("%H:%M:%S.%f")[:-3] if ts.seconds else "-"


def _state(value: int) -> str:
    return pb.OrderState.Name(value).removeprefix("ORDER_STATE_")


def _address(a: pb.Address) -> str:
    return ", ".join(p for p in (a.name, a.line1, a.line2, a.city, a.postal_code, a.country) if p)


def render(order: pb.Order) -> str:
    """A terminal view of one order: state, step timeline, errors, money and parcel, time left."""
    now = datetime.now(timezone.utc)
    lines = [f"order {order.order_id}  {_state(order.state)}  step={order.current_step or '-'}"]
    if order.ended_at.seconds:
        took = (order.ended_at.ToDatetime(timezone.utc) - order.started_at.ToDatetime(timezone.utc)).total_seconds()
        lines.append(f"  ended in {took:.2f}s" + (f": {order.reason}" if order.reason else ""))
    elif order.deadline.seconds:
        left = (order.deadline.ToDatetime(timezone.utc) - now).total_seconds()
        lines.append(f"  {left:.1f}s left of the 15s budget")
    for step in order.steps:
        took = ""
        if step.started_at.seconds and step.ended_at.seconds:
            took = f"{(step.ended_at.ToDatetime() - step.started_at.ToDatetime()).total_seconds():.2f}s"
        error = f"  ({step.error})" if step.error else ""
        attempts = f"attempts={step.attempts}" if step.attempts else ""
        lines.append(f"  {step.name:<16} {step.status:<8} {attempts:<12} {took}{error}")
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
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--line2", default="")


def _address_msg(args) -> pb.Address:
    return pb.Address(name=args.name, line1=args.line1, line2=args.line2, city=args.city,
                      postal_code=args.postal_code, country=args.country)


def _item(text: str) -> pb.Item:
    sku, _, qty = text.partition(":")
    return pb.Item(sku=sku, qty=int(qty or 1))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orders", description="Order lifecycle gateway client")
    p.add_argument("--gateway", default=os.environ.get("GATEWAY_ADDRESS", "127.0.0.1:50051"))
    p.add_argument("--token", default=os.environ.get("GATEWAY_TOKEN", ""), help="bearer token (env GATEWAY_TOKEN)")
    p.add_argument("--tls-ca", default=os.environ.get("GATEWAY_TLS_CA", ""),
                   help="CA or server certificate file; switches TLS on (env GATEWAY_TLS_CA)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per call (watch: for the whole stream)")
    sub = p.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start an order")
    start.add_argument("order_id")
    start.add_argument("--item", action="append", type=_item, required=True, help="SKU:QTY, repeatable")
    start.add_argument("--payment-id", help="defaults to pay-<order_id>")
    _address_args(start)
    for name in ("approve", "reject", "cancel"):
        cmd = sub.add_parser(name, help=f"{name} an order")
        cmd.add_argument("order_id")
        cmd.add_argument("--reviewer", default=os.environ.get("USER", "cli"))
        cmd.add_argument("--reason", default="")
    address = sub.add_parser("address", help="change the shipping address")
    address.add_argument("order_id")
    _address_args(address)
    for name in ("status", "watch"):
        sub.add_parser(name, help=f"{name} an order").add_argument("order_id")
    listing = sub.add_parser("list", help="list orders")
    listing.add_argument("--state", default="", help="e.g. AWAITING_REVIEW")
    listing.add_argument("--limit", type=int, default=20)
    return p


class _Gateway:
    """The stub, with the token and a deadline on every call."""

    def __init__(self, stub: pb_grpc.OrderGatewayServiceStub, token: str, timeout: float):
        self.stub, self.metadata, self.timeout = stub, security.call_metadata(token), timeout

    def __getattr__(self, name: str):
        method = getattr(self.stub, name)
        return lambda request: method(request, metadata=self.metadata, timeout=self.timeout)


def run(args, stub: pb_grpc.OrderGatewayServiceStub) -> None:
    if args.command == "start":
        resp = stub.StartOrder(pb.StartOrderRequest(order_id=args.order_id, items=args.item,
                                                    payment_id=args.payment_id or f"pay-{args.order_id}",
                                                    address=_address_msg(args)))
        print(("already started\n" if resp.already_existed else "") + render(resp.order))
    elif args.command == "approve":
        print(render(stub.ApproveOrder(pb.ApproveOrderRequest(order_id=args.order_id, reviewer=args.reviewer)).order))
    elif args.command == "reject":
        req = pb.RejectOrderRequest(order_id=args.order_id, reviewer=args.reviewer, reason=args.reason)
        print(render(stub.RejectOrder(req).order))
    elif args.command == "cancel":
        print(render(stub.CancelOrder(pb.CancelOrderRequest(order_id=args.order_id, reason=args.reason)).order))
    elif args.command == "address":
        req = pb.UpdateAddressRequest(order_id=args.order_id, address=_address_msg(args))
        print(render(stub.UpdateAddress(req).order))
    elif args.command == "status":
        print(render(stub.GetOrder(pb.GetOrderRequest(order_id=args.order_id)).order))
    elif args.command == "watch":
        for update in stub.WatchOrder(pb.WatchOrderRequest(order_id=args.order_id)):
            print(render(update.order), end="\n\n", flush=True)
    elif args.command == "list":
        state = pb.OrderState.Value(f"ORDER_STATE_{args.state.upper()}") if args.state else 0
        for o in stub.ListOrders(pb.ListOrdersRequest(state=state, limit=args.limit)).orders:
            print(f"{o.order_id:<24} {_state(o.state):<16} {_time(o.updated_at)}  {o.reason}")


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    with security.channel(args.gateway, args.tls_ca) as channel:
        try:
            run(args, _Gateway(pb_grpc.OrderGatewayServiceStub(channel), args.token, args.timeout))
        except grpc.RpcError as err:
            print(f"{err.code().name}: {err.details()}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
