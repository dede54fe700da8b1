"""Postgres connections: one pool per service, logged in as that service's role."""

import asyncio
import logging
from urllib.parse import urlsplit, urlunsplit

import asyncpg

log = logging.getLogger(__name__)


def url_for_role(url: str, role: str) -> str:
    """The same server and database as `url`, logged in as `role` (no password: trust or peer auth)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


class _Connection(asyncpg.Connection):
    """A pooled connection returned without asyncpg's reset query (RESET ALL, UNLISTEN, CLOSE ALL, advisory
    unlock): the services keep no session state, and the query cost a round trip on every release.
    asyncpg still rolls back a transaction left open."""

    def get_reset_query(self) -> str:
        return ""


async def connect(url: str, attempts: int = 30) -> asyncpg.Pool:
    for attempt in range(1, attempts + 1):
        try:
            return await asyncpg.create_pool(url, min_size=1, max_size=10, command_timeout=5,
                                             connection_class=_Connection)
        except (OSError, asyncpg.PostgresError) as err:
            if attempt == attempts:
                raise
            log.warning("postgres_unavailable", extra={"attempt": attempt, "error": str(err)})
            await asyncio.sleep(1)
    raise AssertionError("unreachable")
