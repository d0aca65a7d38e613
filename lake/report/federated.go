//go:build cgo

package report

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"

	"github.com/duckdb/duckdb-go/v2"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/actors/session"
)

// redisBatch is how many HGETALLs go in one pipeline.
const redisBatch = 1000

// The temporary tables the federated reports read beside events.
const federatedSchema = `
CREATE TEMP TABLE redis_users (user_id VARCHAR, last_access_ms BIGINT, country VARCHAR, region VARCHAR, city VARCHAR);
CREATE TEMP TABLE customers (customer_id VARCHAR, name VARCHAR, price_per_click DOUBLE);
`

// loadFederated fills redis_users from the Redis user hashes and customers from PostgreSQL, for the users
// that searched.
func (r *Runner) loadFederated(ctx context.Context, conn *sql.Conn) error {
	if _, err := conn.ExecContext(ctx, federatedSchema); err != nil {
		return fmt.Errorf("report: create the federated tables: %w", err)
	}
	rows, err := conn.QueryContext(ctx, `SELECT DISTINCT user_id FROM events WHERE event_name = 'Search' ORDER BY user_id`)
	if err != nil {
		return fmt.Errorf("report: users who searched: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	nUsers, err := r.loadRedis(ctx, conn, ids)
	if err != nil {
		return err
	}
	nCustomers, err := r.loadCustomers(ctx, conn, ids)
	if err != nil {
		return err
	}
	r.log.Info("federated tables loaded", zap.Int("users", len(ids)), zap.Int("redis_users", nUsers), zap.Int("customers", nCustomers))
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (r *Runner) loadRedis(ctx context.Context, conn *sql.Conn, ids []string) (int, error) {
	n := 0
	err := withAppender(conn, "redis_users", func(a *duckdb.Appender) error {
		for start := 0; start < len(ids); start += redisBatch {
			batch := ids[start:min(start+redisBatch, len(ids))]
			cmds := make([]*redis.MapStringStringCmd, len(batch))
			_, err := r.cfg.Redis.Pipelined(ctx, func(p redis.Pipeliner) error {
				for i, id := range batch {
					cmds[i] = p.HGetAll(ctx, session.UserKey(r.cfg.KeyPrefix, id))
				}
				return nil
			})
			if err != nil {
				return &SourceError{Server: "Redis", Field: "Redis", Err: fmt.Errorf("HGETALL of %d user hashes: %w", len(batch), err)}
			}
			for i, c := range cmds {
				h := c.Val()
				if len(h) == 0 {
					continue
				}
				var last any
				if v, err := strconv.ParseInt(h[session.FieldLastAccess], 10, 64); err == nil {
					last = v
				}
				if err := a.AppendRow(batch[i], last, nullable(h[session.FieldCountry]), nullable(h[session.FieldRegion]), nullable(h[session.FieldCity])); err != nil {
					return err
				}
				n++
			}
		}
		return nil
	})
	return n, err
}

func (r *Runner) loadCustomers(ctx context.Context, conn *sql.Conn, ids []string) (int, error) {
	rows, err := r.cfg.Postgres.Query(ctx, `SELECT customer_id, name, price_per_click::float8 FROM customers WHERE customer_id = ANY($1)`, ids)
	if err != nil {
		return 0, &SourceError{Server: "PostgreSQL", Field: "Postgres", Err: fmt.Errorf("read customers: %w", err)}
	}
	defer rows.Close()
	n := 0
	err = withAppender(conn, "customers", func(a *duckdb.Appender) error {
		for rows.Next() {
			var id string
			var name *string
			var price *float64
			if err := rows.Scan(&id, &name, &price); err != nil {
				return &SourceError{Server: "PostgreSQL", Field: "Postgres", Err: fmt.Errorf("read customers: %w", err)}
			}
			var nv, pv any
			if name != nil {
				nv = *name
			}
			if price != nil {
				pv = *price
			}
			if err := a.AppendRow(id, nv, pv); err != nil {
				return err
			}
			n++
		}
		if err := rows.Err(); err != nil {
			return &SourceError{Server: "PostgreSQL", Field: "Postgres", Err: fmt.Errorf("read customers: %w", err)}
		}
		return nil
	})
	return n, err
}
