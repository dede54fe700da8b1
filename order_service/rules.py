"""What an order refuses, and why: the rules for a cancel, an address change and a review decision, as pure
functions of what the order knows. The workflow's update validators (the gateway's way in: the caller sees the
refusal) and its signal handlers (the Temporal CLI's way in: the refusal is logged) apply the same rules.

A refusal is (reason, message): the stable reason the gateway sends as google.rpc.ErrorInfo, and the message a
person reads. None: accepted."""

import order_service.contract as contract
import shipping_service.contract as shipping

Refusal = tuple[str, str] | None


def cancel_refusal(state: contract.OrderState, shipment_status: str) -> Refusal:
    """A cancel is honoured until dispatch."""
    if state in contract.TERMINAL_STATES:
        return contract.ORDER_ENDED, f"order already ended {state}"
    if shipment_status == shipping.ShipmentStatus.DISPATCHED:
        return contract.ALREADY_DISPATCHED, "order was already dispatched"
    return None


def address_refusal(
    state: contract.OrderState, shipment_status: str, cancelling: bool, address: contract.Address
) -> Refusal:
    """An address change is honoured until dispatch, unless the order is being cancelled, and only with an address
    a carrier can use."""
    if refusal := cancel_refusal(state, shipment_status):
        return refusal
    if cancelling:
        return contract.BEING_CANCELLED, "order is being cancelled"
    problems = "; ".join(f"{field}: {problem}" for field, problem in address.problems())
    return (contract.INVALID_ADDRESS, problems) if problems else None


def review_refusal(state: contract.OrderState, window_closed: bool, decided: str, cancelling: bool) -> Refusal:
    """A decision (approve or reject) is taken once, while the order awaits review and its window is open, and not
    while it is being cancelled. `decided` is the verdict already given ("" if none)."""
    if state != contract.OrderState.AWAITING_REVIEW:
        return contract.NOT_AWAITING_REVIEW, f"order is not awaiting review (state {state})"
    if window_closed:
        return contract.REVIEW_WINDOW_CLOSED, "the review window has closed"
    if decided:
        return contract.ALREADY_DECIDED, f"order was already {decided.removesuffix('e')}ed"
    if cancelling:
        return contract.BEING_CANCELLED, "order is being cancelled"
    return None
