package lease

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// ErrWorkersRunning is returned by Upgrade when it must copy a lease table
// offline and a lease changed while it watched them: a worker still runs.
// Stop the workers of the table (consume, archive, scale) and run Upgrade
// again; nothing was changed.
var ErrWorkersRunning = errors.New("lease: workers are running on the lease table")

// Defaults of UpgradeConfig.
const (
	DefaultIndexAppearTimeout = 10 * time.Second
	DefaultIndexBuildTimeout  = 30 * time.Minute
	indexProgressEvery        = 30 * time.Second
)

// UpgradeConfig tunes Upgrade. The zero value is usable.
type UpgradeConfig struct {
	// FailoverTime is the workers' failover time. Before an offline copy the
	// leases are watched this long: a lease renewed meanwhile means a worker
	// still runs, and the upgrade is refused. Default: DefaultFailoverTime.
	FailoverTime time.Duration
	// IndexAppearTimeout is how long after the server accepted the request to
	// add the index Upgrade waits for the index to show in DescribeTable. A
	// server that accepts the request and adds nothing (dynalite) is noticed
	// this way, and the table is copied offline. Default: 10s.
	IndexAppearTimeout time.Duration
	// IndexBuildTimeout bounds the wait for an index being built (backfilled)
	// to become ACTIVE; ctx may end it sooner. The build goes on afterwards,
	// and Upgrade run again waits for it again. Default: 30m.
	IndexBuildTimeout time.Duration
	// Logger receives one line per step, with the field "table". Default:
	// zap.NewNop().
	Logger *zap.Logger
}

func (c UpgradeConfig) withDefaults() UpgradeConfig {
	if c.FailoverTime <= 0 {
		c.FailoverTime = DefaultFailoverTime
	}
	if c.IndexAppearTimeout <= 0 {
		c.IndexAppearTimeout = DefaultIndexAppearTimeout
	}
	if c.IndexBuildTimeout <= 0 {
		c.IndexBuildTimeout = DefaultIndexBuildTimeout
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return c
}

// Upgrade makes lease table table current and then calls EnsureTable (which
// creates what is missing). A table without OwnerIndex gets it:
//
//   - online: UpdateTable adds the index (DynamoDB builds it while the
//     workers go on), and Upgrade waits until it is ACTIVE, logging progress;
//   - offline, when the server accepted the request but no index appears
//     within IndexAppearTimeout (an emulator): Upgrade watches the leases for
//     FailoverTime and refuses with ErrWorkersRunning if any changed; else it
//     copies every item to "<table>-upgrade" (created with the index) and
//     checks the copy, checks that the table did not change, deletes the
//     table, creates it with the index, copies every item back, checks, and
//     deletes the copy. Items are copied whole, attribute for attribute.
//
// An offline upgrade interrupted at any step is finished by the next call:
// while "<table>-upgrade" exists, the table is either still the original
// (the copy is made again) or deleted or recreated with the index (the copy,
// checked before the original was deleted, is copied back). Workers refuse
// to start meanwhile (CheckIndex). Upgrade of a table that has the index, or
// of no table, only calls EnsureTable. It is not safe to run two Upgrades of
// one table at once.
func Upgrade(ctx context.Context, db DynamoDBAPI, table string, cfg UpgradeConfig) error {
	if err := newUpgrader(db, table, cfg).run(ctx); err != nil {
		return err
	}
	return EnsureTable(ctx, db, table)
}

// upgrader is one Upgrade of one lease table.
type upgrader struct {
	db    DynamoDBAPI
	table string // the lease table
	copy  string // the offline copy
	cfg   UpgradeConfig
	log   *zap.Logger
}

func newUpgrader(db DynamoDBAPI, table string, cfg UpgradeConfig) *upgrader {
	cfg = cfg.withDefaults()
	return &upgrader{db: db, table: table, copy: upgradeCopyTable(table), cfg: cfg, log: cfg.Logger.With(zap.String("table", table))}
}

// run finds where the table stands and takes it from there to having the index.
func (u *upgrader) run(ctx context.Context) error {
	orig, err := describe(ctx, u.db, u.table)
	if err != nil {
		return fmt.Errorf("describe lease table %s: %w", u.table, err)
	}
	cp, err := describe(ctx, u.db, u.copy)
	if err != nil {
		return fmt.Errorf("describe table %s (an upgrade's copy of %s): %w", u.copy, u.table, err)
	}
	switch {
	case cp != nil && (orig == nil || ownerIndexOf(orig) != nil):
		u.log.Info("lease table upgrade: resuming an interrupted offline upgrade; the leases are in its copy",
			zap.String("copy", u.copy), zap.Bool("table_exists", orig != nil))
		return u.restore(ctx)
	case cp != nil:
		u.log.Info("lease table upgrade: an interrupted offline upgrade left its copy before the table was replaced; copying again",
			zap.String("copy", u.copy))
		if err := u.dropTable(ctx, u.copy, "the upgrade's copy"); err != nil {
			return err
		}
		return u.offline(ctx)
	case orig == nil:
		return nil // EnsureTable creates it with the index
	case ownerIndexOf(orig) != nil:
		return u.waitIndexActive(ctx)
	}
	added, err := u.online(ctx, orig)
	if err != nil || added {
		return err
	}
	return u.offline(ctx)
}

// online asks the server to add the index and waits for it. added is false
// when the server accepted the request but no index appeared.
func (u *upgrader) online(ctx context.Context, orig *types.TableDescription) (added bool, err error) {
	u.log.Info("lease table upgrade: adding the owner index online", zap.String("index", OwnerIndex))
	out, err := u.db.UpdateTable(ctx, addIndexInput(u.table, nil))
	if isThroughputRequired(err) { // a provisioned table, or an emulator that always wants a throughput
		u.log.Info("lease table upgrade: the server wants a provisioned throughput for the index; asking again with one")
		out, err = u.db.UpdateTable(ctx, addIndexInput(u.table, indexThroughput(orig)))
	}
	if err != nil {
		return false, fmt.Errorf("add index %s to lease table %s: %w", OwnerIndex, u.table, err)
	}
	if out.TableDescription == nil || ownerIndexOf(out.TableDescription) == nil {
		appeared, err := u.indexAppears(ctx)
		if err != nil || !appeared {
			return false, err
		}
	}
	return true, u.waitIndexActive(ctx)
}

func addIndexInput(table string, throughput *types.ProvisionedThroughput) *dynamodb.UpdateTableInput {
	return &dynamodb.UpdateTableInput{
		TableName:            aws.String(table),
		AttributeDefinitions: ownerIndexAttributes(),
		GlobalSecondaryIndexUpdates: []types.GlobalSecondaryIndexUpdate{{Create: &types.CreateGlobalSecondaryIndexAction{
			IndexName:             aws.String(OwnerIndex),
			KeySchema:             ownerIndexKeySchema(),
			Projection:            &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
			ProvisionedThroughput: throughput,
		}}},
	}
}

// isThroughputRequired recognises the refusal of an index without a provisioned throughput.
func isThroughputRequired(err error) bool {
	var apiErr smithy.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode() == "ValidationException" &&
		strings.Contains(strings.ToLower(apiErr.ErrorMessage()), "provisionedthroughput")
}

// indexThroughput is the table's own throughput, or one unit each when it has none (on demand).
func indexThroughput(desc *types.TableDescription) *types.ProvisionedThroughput {
	pt := &types.ProvisionedThroughput{ReadCapacityUnits: aws.Int64(1), WriteCapacityUnits: aws.Int64(1)}
	if d := desc.ProvisionedThroughput; d != nil && aws.ToInt64(d.ReadCapacityUnits) > 0 && aws.ToInt64(d.WriteCapacityUnits) > 0 {
		pt.ReadCapacityUnits, pt.WriteCapacityUnits = d.ReadCapacityUnits, d.WriteCapacityUnits
	}
	return pt
}

// indexAppears polls DescribeTable for the index for IndexAppearTimeout.
func (u *upgrader) indexAppears(ctx context.Context) (bool, error) {
	deadline := time.Now().Add(u.cfg.IndexAppearTimeout)
	for {
		desc, err := describe(ctx, u.db, u.table)
		if err != nil {
			return false, fmt.Errorf("describe lease table %s: %w", u.table, err)
		}
		if desc != nil && ownerIndexOf(desc) != nil {
			return true, nil
		}
		if time.Now().After(deadline) {
			u.log.Warn("lease table upgrade: the server accepted the new index but shows none (an emulator that cannot add an index); copying the table offline",
				zap.Duration("waited", u.cfg.IndexAppearTimeout))
			return false, nil
		}
		if err := retry.Sleep(ctx, tableActivePollMin*4); err != nil {
			return false, fmt.Errorf("wait for index %s of lease table %s to appear: %w", OwnerIndex, u.table, err)
		}
	}
}

// waitIndexActive waits, at most IndexBuildTimeout, until the index is ACTIVE, logging its progress.
func (u *upgrader) waitIndexActive(ctx context.Context) error {
	ctx, cancel := context.WithTimeoutCause(ctx, u.cfg.IndexBuildTimeout,
		fmt.Errorf("index %s not ACTIVE after %v (IndexBuildTimeout)", OwnerIndex, u.cfg.IndexBuildTimeout))
	defer cancel()
	start, lastLog := time.Now(), time.Time{}
	delay := tableActivePollMin
	for {
		desc, err := describe(ctx, u.db, u.table)
		if err != nil {
			return fmt.Errorf("wait for index %s of lease table %s: %w", OwnerIndex, u.table, err)
		}
		gsi := (*types.GlobalSecondaryIndexDescription)(nil)
		if desc != nil {
			gsi = ownerIndexOf(desc)
		}
		if gsi == nil {
			return fmt.Errorf("wait for index %s of lease table %s: %w: the index is gone", OwnerIndex, u.table, ErrNoOwnerIndex)
		}
		if gsi.IndexStatus == types.IndexStatusActive {
			u.log.Info("lease table upgrade: owner index ACTIVE", zap.String("index", OwnerIndex), zap.Duration("waited", time.Since(start)))
			return nil
		}
		if time.Since(lastLog) >= indexProgressEvery {
			lastLog = time.Now()
			u.log.Info("lease table upgrade: owner index being built", zap.String("index", OwnerIndex), zap.String("status", string(gsi.IndexStatus)),
				zap.Bool("backfilling", aws.ToBool(gsi.Backfilling)), zap.Int64("items", aws.ToInt64(gsi.ItemCount)), zap.Duration("waited", time.Since(start)))
		}
		if err := retry.Sleep(ctx, delay); err != nil {
			return fmt.Errorf("index %s of lease table %s is still %s: %w; it goes on building: run 'clickfleet setup' again to wait for it",
				OwnerIndex, u.table, gsi.IndexStatus, err)
		}
		delay = min(2*delay, tableActivePollMax)
	}
}
