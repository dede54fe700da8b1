"""The shipping service: ShippingWorkflow on its own task queue, its activities over the brief's stubs, and the
`shipping` Postgres schema. It knows nothing of orders; the order service depends on its contract (contract.py)."""
