"""The local stack that `./dev up` runs: the launcher (local.py), the supervisor that restarts what exits
(supervise.py), the demo order (__main__.py), and the stub generator (protos.py).

Starts the services as processes (`python -m <service>`) and imports of them only their contracts; talks to the
gateway through client."""
