-- migrate:up
-- Roles are cluster-wide; each service logs in as its own role, the gateway reads through gateway_reader.
-- The orders and shipping migrations both create gateway_reader and may run at the same time (compose starts
-- them together): the lock, held to the end of this migration's transaction, makes the second wait and then
-- see the role, where check-then-create alone fails on pg_authid's unique index.
DO $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('orderlife: create roles'));
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'order_service') THEN
    CREATE ROLE order_service LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gateway_reader') THEN
    CREATE ROLE gateway_reader LOGIN;
  END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS orders;
REVOKE ALL ON SCHEMA orders FROM PUBLIC;
GRANT USAGE ON SCHEMA orders TO order_service, gateway_reader;

CREATE TABLE orders.orders (
    order_id    text PRIMARY KEY,
    payment_id  text NOT NULL UNIQUE,
    items       jsonb NOT NULL,
    address     jsonb NOT NULL,
    state       text NOT NULL,
    reason      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_state_created_idx ON orders.orders (state, created_at);

-- One row per payment_id: the idempotency key of the charge.
CREATE TABLE orders.payments (
    payment_id   text PRIMARY KEY,
    order_id     text NOT NULL REFERENCES orders.orders (order_id),
    amount       integer NOT NULL CHECK (amount > 0),
    status       text NOT NULL CHECK (status IN ('charged', 'refunded')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    refunded_at  timestamptz
);
CREATE UNIQUE INDEX payments_order_idx ON orders.payments (order_id);

-- Business events, one of each type per order (activity retries upsert, never duplicate).
CREATE TABLE orders.events (
    id        bigserial PRIMARY KEY,
    order_id  text NOT NULL REFERENCES orders.orders (order_id),
    type      text NOT NULL,
    payload   jsonb NOT NULL DEFAULT '{}',
    ts        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, type)
);

-- Every activity attempt and its outcome; no foreign key, since ReceiveOrder attempts
-- fail before the order row exists.
CREATE TABLE orders.step_attempts (
    order_id     text NOT NULL,
    step         text NOT NULL,
    workflow_id  text NOT NULL,
    run_id       text NOT NULL,
    activity_id  text NOT NULL,
    attempt      integer NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('ok', 'error', 'timeout')),
    message      text NOT NULL DEFAULT '',
    duration_ms  integer NOT NULL,
    ts           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, activity_id, attempt)
);
CREATE INDEX step_attempts_order_idx ON orders.step_attempts (order_id, ts);

GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA orders TO order_service;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA orders TO order_service;
GRANT SELECT ON ALL TABLES IN SCHEMA orders TO gateway_reader;
REVOKE ALL ON orders.schema_migrations FROM order_service, gateway_reader;

-- migrate:down
DROP TABLE orders.step_attempts;
DROP TABLE orders.events;
DROP TABLE orders.payments;
DROP TABLE orders.orders;
REVOKE ALL ON SCHEMA orders FROM order_service, gateway_reader;
DROP OWNED BY order_service;
DROP ROLE order_service;
