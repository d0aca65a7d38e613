package provision

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/clickfleet/clickfleet/enrich/names"
)

// customersSchema is idempotent: it may run any number of times, also while others use the table.
const customersSchema = `
CREATE TABLE IF NOT EXISTS customers (
    customer_id     text PRIMARY KEY,
    name            text NOT NULL DEFAULT '',
    price_per_click numeric(12, 4) NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE FUNCTION clickfleet_customers_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('` + names.Channel + `', OLD.customer_id);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('` + names.Channel + `', NEW.customer_id);
    RETURN NEW;
END $$;
CREATE OR REPLACE TRIGGER clickfleet_customers_changed
    AFTER INSERT OR UPDATE OR DELETE ON customers
    FOR EACH ROW EXECUTE FUNCTION clickfleet_customers_notify();
`

// Execer runs SQL; *pgx.Conn and *pgxpool.Pool satisfy it.
type Execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// EnsureCustomersSchema creates the `customers` table (customer_id, name, price_per_click, updated_at) and
// the trigger that NOTIFYs names.Channel on every change. Requires PostgreSQL 14 or later.
func EnsureCustomersSchema(ctx context.Context, db Execer) error {
	if _, err := db.Exec(ctx, customersSchema); err != nil {
		return fmt.Errorf("create customers schema: %w", err)
	}
	return nil
}
