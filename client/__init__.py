"""The gateway's client side, for people and scripts: the `orders` CLI (cli.py), the review desk (desk.py) and the
connection helpers (connection.py), all over the generated stubs (orderlife.gateway.v1).

Imports only the generated stubs: never the gateway server, a service or common, so it runs wherever the stubs do
and ships in no service image."""
