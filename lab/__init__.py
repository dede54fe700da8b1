"""Performance and chaos tools: the benchmark (bench.py) against bare Temporal (baseline.py), the price of single
Temporal operations (costs.py) and the soak under faults (soak.py).

Reaches the system only through its public contracts (the services' contract modules, the gateway's API through
client) and the local stack's launcher (stack); checks outcomes with tests.support. Ships in no service image."""
