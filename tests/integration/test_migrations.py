"""The two schemas' migrations against one Postgres at the same time, as compose runs migrate-orders and
migrate-shipping: both create the shared gateway_reader role, and both must succeed whatever the interleaving.
Each test has a Postgres of its own (embedded, as ./dev up runs it), since it drops the project's roles."""

import asyncio
import re
import subprocess
from pathlib import Path

import asyncpg
import pytest

from stack import local

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
ROUNDS = 10


@pytest.fixture
def admin_url(tmp_path):
    url = local.start_postgres(tmp_path / "pgdata")
    yield url
    local.stop_postgres(tmp_path / "pgdata")


def dbmate(admin_url: str, schema: str) -> subprocess.Popen[str]:
    """`dbmate up` for one schema, as stack/local.py migrate runs it, started and not waited for."""
    url = f"{admin_url}&sslmode=disable&search_path={schema}"
    folder = local.ROOT / "db" / schema / "migrations"
    args = [local.binary("dbmate"), "--url", url, "--migrations-dir", str(folder), "--no-dump-schema", "up"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(proc: subprocess.Popen[str]) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


async def start_afresh(admin_url: str) -> None:
    """No schema and no role of the project's: a database the migrations have never run on."""
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS orders, shipping CASCADE")
        await conn.execute("DROP ROLE IF EXISTS order_service, shipping_service, gateway_reader")
    finally:
        await conn.close()


async def test_both_migrations_at_once_succeed_every_time(admin_url):
    for round_ in range(ROUNDS):
        await start_afresh(admin_url)
        procs = [dbmate(admin_url, schema) for schema in local.SCHEMAS]
        for schema, proc in zip(local.SCHEMAS, procs, strict=True):
            code, out = await asyncio.to_thread(finished, proc)
            assert code == 0, f"round {round_}: migrations of {schema} failed:\n{out}"
    conn = await asyncpg.connect(admin_url)
    try:
        roles = {r["rolname"] for r in await conn.fetch("SELECT rolname FROM pg_roles")}
    finally:
        await conn.close()
    assert {"order_service", "shipping_service", "gateway_reader"} <= roles


async def test_shipping_migrates_while_orders_is_between_its_role_check_and_its_commit(admin_url):
    """The interleaving that fails without a lock, made certain: the orders migration's role block has run in a
    transaction not yet committed (it created gateway_reader) when the shipping migration checks for the role."""
    orders_sql = next((local.ROOT / "db" / "orders" / "migrations").glob("*.sql")).read_text()
    role_block = re.search(r"^DO \$\$.*?^\$\$;", orders_sql, re.S | re.M)
    assert role_block and "gateway_reader" in role_block.group(0)
    await start_afresh(admin_url)
    conn = await asyncpg.connect(admin_url)
    try:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(role_block.group(0))
        shipping = dbmate(admin_url, "shipping")
        await asyncio.sleep(1.5)  # shipping reaches its role block and waits (for the lock, or the unique index)
        await transaction.commit()
    finally:
        await conn.close()
    code, out = await asyncio.to_thread(finished, shipping)
    assert code == 0, f"the shipping migration failed:\n{out}"


def test_the_role_blocks_are_the_same_lock():
    """Both migrations take the same advisory lock before they look for a role."""
    locks = set()
    for schema in local.SCHEMAS:
        sql = next(Path(local.ROOT / "db" / schema / "migrations").glob("*.sql")).read_text()
        locks.update(re.findall(r"pg_advisory_xact_lock\(([^)]*\))\)", sql))
    assert len(locks) == 1, locks
