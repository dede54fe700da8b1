"""Postgres connections: one pool per service, logged in as that service's role."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextvars import ContextVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from common import health

log = logging.getLogger(__name__)

# What Postgres and its client raise while the server is down, restarting or has dropped a connection: a
# passing condition, answered UNAVAILABLE by the gateway and retried by activities. InternalClientError is
# how asyncpg reports a connection a restart left mid-protocol ("cannot switch to state 12; another
# operation (2) is in progress", MagicStack/asyncpg#1069); the pool's reset query on release finds such a
# connection and terminates it, so it is raised once and the connection is never used again (see _reset).
BACKEND_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


def url_for_role(url: str, role: str) -> str:
    """The same server and database as `url`, logged in as `role` (no password: trust or peer auth)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


# True from the end of a connection() block until its release is done. (asyncpg releases in a task of its own,
# which sees a copy of this context: the flag is cleared here, not by _reset.)
_ran_to_end: ContextVar[bool] = ContextVar("ran_to_end", default=False)


@contextlib.asynccontextmanager
async def connection(pool: asyncpg.Pool) -> AsyncIterator[PoolConnectionProxy]:
    """A pooled connection for one block of work. Released after a block that ran to its end, it skips asyncpg's
    reset query (a round trip per use, a sixth of Postgres's transactions): a completed block leaves nothing to
    reset, since no code here changes session state (no SET, LISTEN, advisory lock or cursor outside a
    transaction). After a block that raised or was cancelled, the reset query runs, and finds a connection an
    interrupted query left mid-protocol."""
    try:
        async with pool.acquire() as conn:
            yield conn
            _ran_to_end.set(True)
    finally:
        _ran_to_end.set(False)


async def _reset(conn: asyncpg.Connection) -> None:
    """The pool's reset on release (asyncpg has already rolled back any open transaction)."""
    if not _ran_to_end.get():
        await conn.execute(conn.get_reset_query())


async def connect(url: str, attempts: int | None = None) -> asyncpg.Pool:
    """A pool, once Postgres answers: a service started before Postgres waits for it (with backoff, without
    end unless `attempts` is given) instead of exiting."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await asyncpg.create_pool(url, min_size=1, max_size=10, command_timeout=5, reset=_reset)
        except BACKEND_ERRORS as err:
            if attempts is not None and attempt >= attempts:
                raise
            log.warning("postgres_unavailable", extra={"attempt": attempt, "error": str(err)})
            await asyncio.sleep(health.backoff(attempt))
