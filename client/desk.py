"""A person deciding reviews at a terminal: one key to approve or reject, with a countdown to the review
deadline. Used by `orders watch` (and `orders start --watch`) and by the review desk, `orders review`.

Without a terminal (a pipe, a script) nothing is asked: watch only prints, and the desk prints each change
of the queue, or decides every order itself with --approve-all / --reject-all.
"""

import contextlib
import queue
import select
import sys
import termios
import threading
import tty
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Protocol, TypeVar, overload

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from orderlife.gateway.v1 import gateway_pb2 as pb

REDRAW_SECONDS = 0.2
Message = TypeVar("Message")


class _End:
    """What in_background puts after a stream's last message."""


_END = _End()


class Gateway(Protocol):
    """The calls a watch and the desk make: the CLI's stub, which adds the token and a deadline to each."""

    def WatchOrder(self, request: pb.WatchOrderRequest, /) -> Iterable[pb.WatchOrderResponse]: ...
    def ApproveOrder(self, request: pb.ApproveOrderRequest, /) -> pb.ApproveOrderResponse: ...
    def RejectOrder(self, request: pb.RejectOrderRequest, /) -> pb.RejectOrderResponse: ...


def at_a_terminal() -> bool:
    return sys.stdin.isatty() and sys.stdout.isatty()


def seconds_left(ts: Timestamp) -> float:
    return (ts.ToDatetime(UTC) - datetime.now(UTC)).total_seconds()


def units(order: pb.Order) -> int:
    """The amount the order will be charged: the brief's payment stub charges one per unit."""
    return sum(i.qty for i in order.items)


@contextlib.contextmanager
def one_key() -> Iterator[Callable[[float], str | None]]:
    """Reads single keys without Enter (stdin in cbreak mode, restored afterwards): read(timeout) → key or None."""
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read(timeout: float) -> str | None:
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
        return sys.stdin.read(1) if ready else None

    try:
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def in_background(stream: Iterable[Message]) -> queue.Queue[Message | _End | grpc.RpcError]:
    """The stream's messages as they come, then _END (or the RpcError that ended it)."""
    out: queue.Queue[Message | _End | grpc.RpcError] = queue.Queue()

    def pump() -> None:
        try:
            for message in stream:
                out.put(message)
            out.put(_END)
        except grpc.RpcError as err:
            out.put(err)

    threading.Thread(target=pump, daemon=True).start()
    return out


@overload
def _next(messages: queue.Queue[Message | _End | grpc.RpcError], timeout: None) -> Message: ...
@overload
def _next(messages: queue.Queue[Message | _End | grpc.RpcError], timeout: float) -> Message | None: ...
def _next(messages: queue.Queue[Message | _End | grpc.RpcError], timeout: float | None) -> Message | None:
    """The next message (waiting for it when timeout is None), None if none came within timeout; raises
    StopIteration at the end, or its error."""
    try:
        message = messages.get(timeout=timeout)
    except queue.Empty:
        return None
    if isinstance(message, _End):
        raise StopIteration
    if isinstance(message, grpc.RpcError):
        raise message
    return message


def _no_key(timeout: float) -> None:
    """The key reader when nothing is asked (never called: the order counts as decided)."""
    return None


def watch(gateway: Gateway, order_id: str, show: Callable[[pb.Order], None], ask: bool, reviewer: str) -> None:
    """Shows the order on every change until it ends; while it awaits review and `ask`, one key decides it."""
    messages = in_background(gateway.WatchOrder(pb.WatchOrderRequest(order_id=order_id)))
    keys: contextlib.AbstractContextManager[Callable[[float], str | None]] = (
        one_key() if ask else contextlib.nullcontext(_no_key)
    )
    order: pb.Order | None = None
    decided = not ask
    with keys as read:
        while True:
            try:
                update = _next(messages, REDRAW_SECONDS if not decided else None)
            except StopIteration:
                return
            if update is not None:
                order = update.order
                print("\r\033[K" if not decided else "", end="")
                show(order)
            if decided or order is None or order.state != pb.ORDER_STATE_AWAITING_REVIEW:
                continue
            left = seconds_left(order.review_deadline)
            if left <= 0:
                decided = True
                continue
            print(
                f"\r\033[K  review closes in {left:4.1f}s   [a] approve   [r] reject   [s] skip  ", end="", flush=True
            )
            key = read(0)
            if key in ("a", "r", "s"):
                decided = True
                print()
                if key != "s":
                    print(decide(gateway, order.order_id, key == "a", reviewer), flush=True)


def decide(gateway: Gateway, order_id: str, approve: bool, reviewer: str) -> str:
    """Approves or rejects; a refusal (the window closed meanwhile, the order was cancelled) is told, not raised."""
    try:
        if approve:
            gateway.ApproveOrder(pb.ApproveOrderRequest(order_id=order_id, reviewer=reviewer))
        else:
            gateway.RejectOrder(
                pb.RejectOrderRequest(order_id=order_id, reviewer=reviewer, reason="rejected at the review desk")
            )
    except grpc.RpcError as err:
        if err.code() not in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.NOT_FOUND):
            raise
        return f"{order_id}: {err.code().name}: {err.details()}"
    return f"{order_id}: {'approved' if approve else 'rejected'}"


def desk_lines(waiting: list[pb.Order], selected: int) -> list[str]:
    lines = [f"{'':2}{'ORDER_ID':<20} {'LEFT':>6}  {'AMOUNT':>6}  {'ITEMS':<24} ADDRESS"]
    for n, order in enumerate(waiting):
        items = ", ".join(f"{i.sku}x{i.qty}" for i in order.items)
        address = ", ".join(
            p
            for p in (
                order.address.name,
                order.address.line1,
                order.address.city,
                order.address.postal_code,
                order.address.country,
            )
            if p
        )
        lines.append(
            f"{'>' if n == selected else ' '} {order.order_id:<20} {seconds_left(order.review_deadline):5.1f}s"
            f"  {units(order):>6}  {items[:24]:<24} {address}"
        )
    if not waiting:
        lines.append("  (no order is waiting for review)")
    return lines


def desk(stream: Iterable[pb.WatchReviewsResponse], gateway: Gateway, reviewer: str, auto: str = "") -> None:
    """The review desk: every order waiting for review, pushed by the gateway as the queue changes.

    At a terminal: a approves and r rejects the selected order (the one whose window closes first, or the
    one picked with j/k), q quits. Otherwise: each change of the queue is printed, or with auto ("approve"
    or "reject") every order is decided as it arrives.
    """
    messages = in_background(stream)
    if auto or not at_a_terminal():
        handled: set[str] = set()
        while True:
            try:
                update = _next(messages, None)
            except StopIteration:
                return
            for order in update.waiting:
                if order.order_id in handled:
                    continue
                handled.add(order.order_id)
                if auto:
                    print(decide(gateway, order.order_id, auto == "approve", reviewer), flush=True)
                else:
                    print(f"waiting: {desk_lines([order], -1)[1].strip()}", flush=True)
    waiting: list[pb.Order] = []
    selected, note = 0, ""
    with one_key() as read:
        while True:
            try:
                latest = _next(messages, 0)
            except StopIteration:
                return
            if latest is not None:
                waiting = list(latest.waiting)
            expired = [o.order_id for o in waiting if seconds_left(o.review_deadline) <= 0]
            if expired:
                note = f"{', '.join(expired)}: review window closed without a decision (the order is rejected)"
                waiting = [o for o in waiting if o.order_id not in expired]
            selected = min(selected, max(len(waiting) - 1, 0))
            screen = ["review desk: [a] approve  [r] reject  [j/k] select  [q] quit", ""]
            screen += desk_lines(waiting, selected) + ["", note]
            print("\033[H\033[J" + "\n".join(screen), flush=True)
            key = read(REDRAW_SECONDS)
            if key == "q":
                return
            if key in ("j", "k") and waiting:
                selected = (selected + (1 if key == "j" else -1)) % len(waiting)
            if key in ("a", "r") and waiting:
                order = waiting.pop(selected)
                note = decide(gateway, order.order_id, key == "a", reviewer)
