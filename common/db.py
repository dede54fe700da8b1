"""Postgres connections: one pool per service, logged in as that service's role."""

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from common import health

log = logging.getLogger(__name__)

# What Postgres and its client raise while the server is down, restarting or has dropped a connection: a
# passing condition, answered UNAVAILABLE by the gateway and retried by activities. InternalClientError is
# how asyncpg reports a connection a restart left mid-protocol ("cannot switch to state 12; another
# operation (2) is in progress", MagicStack/asyncpg#1069); the pool's reset query on release finds such a
# connection and terminates it, so it is raised once and the connection is never used again.
BACKEND_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def url_for_role(url: str, role: str) -> str:
    """The same server and database as `url`, logged in as `role` (no password: trust or peer auth)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


async def connect(url: str, attempts: int | None = None) -> asyncpg.Pool:
    """A pool, once Postgres answers: a service started before Postgres waits for it (with backoff, without
    end unless `attempts` is given) instead of exiting."""
    # asyncpg's default reset query stays on: besides clearing session state it is what finds a connection
    # broken mid-protocol before the pool hands it out again.
    attempt = 0
    while True:
        attempt += 1
        try:
            return await asyncpg.create_pool(url, min_size=1, max_size=10, command_timeout=5)
        except BACKEND_ERRORS as err:
            if attempts is not None and attempt >= attempts:
                raise
            log.warning("postgres_unavailable", extra={"attempt": attempt, "error": str(err)})
            await asyncio.sleep(health.backoff(attempt))
