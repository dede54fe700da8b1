-- migrate:up
-- Roles are cluster-wide; each service logs in as its own role, the gateway reads through gateway_reader.
-- The orders and shipping migrations both create gateway_reader and may run at the same time (compose starts
-- them together): the lock, held to the end of this migration's transaction, makes the second wait and then
-- see the role, where check-then-create alone fails on pg_authid's unique index.
DO $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('orderlife: create roles'));
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'shipping_service') THEN
    CREATE ROLE shipping_service LOGIN;
  END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'gateway_reader') THEN
    CREATE ROLE gateway_reader LOGIN;
  END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS shipping;
REVOKE ALL ON SCHEMA shipping FROM PUBLIC;
GRANT USAGE ON SCHEMA shipping TO shipping_service, gateway_reader;

CREATE TABLE shipping.shipments (
    order_id         text PRIMARY KEY,
    status           text NOT NULL CHECK (status IN ('preparing', 'prepared', 'dispatched', 'cancelled')),
    items            jsonb NOT NULL,
    address          jsonb NOT NULL,
    dispatch_rounds  integer NOT NULL DEFAULT 0,
    carrier_message  text NOT NULL DEFAULT '',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipments_status_idx ON shipping.shipments (status);

CREATE TABLE shipping.events (
    id        bigserial PRIMARY KEY,
    order_id  text NOT NULL REFERENCES shipping.shipments (order_id),
    type      text NOT NULL,
    payload   jsonb NOT NULL DEFAULT '{}',
    ts        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (order_id, type)
);

CREATE TABLE shipping.step_attempts (
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
CREATE INDEX step_attempts_order_idx ON shipping.step_attempts (order_id, ts);

GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA shipping TO shipping_service;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA shipping TO shipping_service;
GRANT SELECT ON ALL TABLES IN SCHEMA shipping TO gateway_reader;
REVOKE ALL ON shipping.schema_migrations FROM shipping_service, gateway_reader;

-- migrate:down
DROP TABLE shipping.step_attempts;
DROP TABLE shipping.events;
DROP TABLE shipping.shipments;
REVOKE ALL ON SCHEMA shipping FROM shipping_service, gateway_reader;
DROP OWNED BY shipping_service;
DROP ROLE shipping_service;
