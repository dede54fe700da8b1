"""The order service: OrderWorkflow on its own task queue, its activities over the brief's stubs, and the `orders`
Postgres schema (orders, payments, the attempt log). Other packages import only its contract (contract.py)."""
