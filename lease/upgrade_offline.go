package lease

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"go.uber.org/zap"

	"github.com/clickfleet/clickfleet/internal/retry"
)

// items are a table's items by leaseKey, as the server returned them.
type items map[string]map[string]types.AttributeValue

// offline copies the table to the copy, replaces it with one with the index and copies back.
func (u *upgrader) offline(ctx context.Context) error {
	snap, err := u.observe(ctx)
	if err != nil {
		return err
	}
	if err := u.copyOut(ctx, snap); err != nil {
		return err
	}
	if err := u.dropOriginal(ctx, snap); err != nil {
		return err
	}
	return u.restore(ctx)
}

// observe reads the table twice FailoverTime apart and returns the second
// reading, or ErrWorkersRunning if an item changed in between.
func (u *upgrader) observe(ctx context.Context) (items, error) {
	first, err := scanItems(ctx, u.db, u.table)
	if err != nil {
		return nil, err
	}
	if len(first) == 0 {
		u.log.Info("lease table upgrade: the table is empty; nothing to watch")
		return first, nil
	}
	u.log.Info("lease table upgrade: watching the leases for the failover time: a change means a worker still runs",
		zap.Int("leases", len(first)), zap.Duration("failover_time", u.cfg.FailoverTime))
	if err := retry.Sleep(ctx, u.cfg.FailoverTime); err != nil {
		return nil, fmt.Errorf("watch the leases of %s: %w", u.table, err)
	}
	second, err := scanItems(ctx, u.db, u.table)
	if err != nil {
		return nil, err
	}
	if d := diffItems(first, second); d != "" {
		return nil, u.workersRunning(fmt.Sprintf("during the %v watch, %s", u.cfg.FailoverTime, d))
	}
	return second, nil
}

func (u *upgrader) workersRunning(what string) error {
	return fmt.Errorf("%w: lease table %s: %s; stop every worker of this lease table (consume, archive or scale with --lease-table %s), then run 'clickfleet setup' again",
		ErrWorkersRunning, u.table, what, u.table)
}

// copyOut creates the copy with the index, writes every item of snap to it and checks it.
func (u *upgrader) copyOut(ctx context.Context, snap items) error {
	if err := u.ensureLeaseTable(ctx, u.copy, "the upgrade's copy"); err != nil {
		return err
	}
	d, err := putChecked(ctx, u.db, u.copy, snap)
	if err != nil {
		return err
	}
	if d != "" {
		return fmt.Errorf("check the copy %s of lease table %s: %s", u.copy, u.table, d)
	}
	u.log.Info("lease table upgrade: leases copied", zap.String("copy", u.copy), zap.Int("leases", len(snap)))
	return nil
}

// dropOriginal deletes the table once it is seen unchanged since snap.
func (u *upgrader) dropOriginal(ctx context.Context, snap items) error {
	now, err := scanItems(ctx, u.db, u.table)
	if err != nil {
		return err
	}
	if d := diffItems(snap, now); d != "" {
		if err := u.dropTable(ctx, u.copy, "the upgrade's copy"); err != nil {
			u.log.Warn("lease table upgrade: could not delete the copy", zap.Error(err))
		}
		return u.workersRunning("while it was copied, " + d)
	}
	if _, err := waitActive(ctx, u.db, u.table, "lease table"); err != nil {
		return err
	}
	return u.dropTable(ctx, u.table, "lease table")
}

// restore creates the table with the index, copies every item of the copy to
// it, checks it and deletes the copy.
func (u *upgrader) restore(ctx context.Context) error {
	if err := u.ensureLeaseTable(ctx, u.table, "lease table"); err != nil {
		return err
	}
	saved, err := scanItems(ctx, u.db, u.copy)
	if err != nil {
		return err
	}
	d, err := putChecked(ctx, u.db, u.table, saved)
	if err != nil {
		return err
	}
	if d != "" {
		return fmt.Errorf("check lease table %s against its copy %s: %s; the copy is kept: stop every worker of the table, then run 'clickfleet setup' again",
			u.table, u.copy, d)
	}
	u.log.Info("lease table upgrade: leases copied back", zap.Int("leases", len(saved)))
	if err := u.dropTable(ctx, u.copy, "the upgrade's copy"); err != nil {
		return err
	}
	u.log.Info("lease table upgrade: done; the table has the owner index", zap.String("index", OwnerIndex))
	return nil
}

// ensureLeaseTable creates a table of the lease table's shape (with the index) unless it exists and waits until it is ACTIVE.
func (u *upgrader) ensureLeaseTable(ctx context.Context, name, role string) error {
	if err := createTable(ctx, u.db, tableSpec{role: role, in: leaseTableInput(name)}); err != nil {
		return err
	}
	desc, err := waitActive(ctx, u.db, name, role)
	if err != nil {
		return err
	}
	if ownerIndexOf(desc) == nil {
		return fmt.Errorf("%s %s exists without index %s; delete it and run 'clickfleet setup' again", role, name, OwnerIndex)
	}
	u.log.Info("lease table upgrade: table with the owner index ready", zap.String("name", name), zap.String("role", role))
	return nil
}

// dropTable deletes a table and waits until it is gone.
func (u *upgrader) dropTable(ctx context.Context, name, role string) error {
	if _, err := u.db.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(name)}); err != nil {
		return fmt.Errorf("delete %s %s: %w", role, name, err)
	}
	delay := tableActivePollMin
	for {
		desc, err := describe(ctx, u.db, name)
		if err != nil {
			return fmt.Errorf("wait for %s %s to be deleted: %w", role, name, err)
		}
		if desc == nil {
			u.log.Info("lease table upgrade: table deleted", zap.String("name", name), zap.String("role", role))
			return nil
		}
		if err := retry.Sleep(ctx, delay); err != nil {
			return fmt.Errorf("wait for %s %s to be deleted: %w", role, name, err)
		}
		delay = min(2*delay, tableActivePollMax)
	}
}

// scanItems reads every item of a table with a strongly consistent, paginated Scan.
func scanItems(ctx context.Context, db DynamoDBAPI, table string) (items, error) {
	out := items{}
	var start map[string]types.AttributeValue
	for {
		page, err := db.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start})
		if err != nil {
			return nil, fmt.Errorf("scan %s: %w", table, err)
		}
		for _, item := range page.Items {
			k, ok := item[attrKey].(*types.AttributeValueMemberS)
			if !ok {
				return nil, fmt.Errorf("scan %s: an item without a string %s", table, attrKey)
			}
			out[k.Value] = item
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = page.LastEvaluatedKey
	}
}

// putItems writes every item, whole, to a table.
func putItems(ctx context.Context, db DynamoDBAPI, table string, all items) error {
	for _, key := range slices.Sorted(maps.Keys(all)) {
		if _, err := db.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(table), Item: all[key]}); err != nil {
			return fmt.Errorf("copy lease %s to %s: %w", key, table, err)
		}
	}
	return nil
}

// putChecked writes every item, whole, to a table and then reads the table
// back: d describes how it differs from all ("" when it holds exactly them).
func putChecked(ctx context.Context, db DynamoDBAPI, table string, all items) (d string, err error) {
	if err := putItems(ctx, db, table, all); err != nil {
		return "", err
	}
	got, err := scanItems(ctx, db, table)
	if err != nil {
		return "", err
	}
	return diffItems(all, got), nil
}

// diffItems describes the first difference between two readings ("" when equal).
func diffItems(was, now items) string {
	for _, key := range slices.Sorted(maps.Keys(was)) {
		n, ok := now[key]
		if !ok {
			return fmt.Sprintf("lease %s disappeared", key)
		}
		if a, b := canonicalItem(was[key]), canonicalItem(n); a != b {
			return fmt.Sprintf("lease %s changed (leaseCounter %s → %s)", key, canonical(was[key][attrCounter]), canonical(n[attrCounter]))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(now)) {
		if _, ok := was[key]; !ok {
			return fmt.Sprintf("lease %s appeared", key)
		}
	}
	return ""
}

// canonicalItem renders an item so that equal items, and only those, render equal.
func canonicalItem(item map[string]types.AttributeValue) string {
	var b strings.Builder
	for _, name := range slices.Sorted(maps.Keys(item)) {
		b.WriteString(strconv.Quote(name) + "=" + canonical(item[name]) + ";")
	}
	return b.String()
}

// canonical renders one value with its type; sets are sorted (their order means nothing).
func canonical(av types.AttributeValue) string {
	quoted := func(kind string, ss []string, sorted bool) string {
		q := make([]string, len(ss))
		for i, s := range ss {
			q[i] = strconv.Quote(s)
		}
		if sorted {
			slices.Sort(q)
		}
		return kind + "[" + strings.Join(q, ",") + "]"
	}
	switch v := av.(type) {
	case nil:
		return "absent"
	case *types.AttributeValueMemberS:
		return "S" + strconv.Quote(v.Value)
	case *types.AttributeValueMemberN:
		return "N" + v.Value
	case *types.AttributeValueMemberB:
		return "B" + strconv.Quote(string(v.Value))
	case *types.AttributeValueMemberBOOL:
		return "BOOL" + strconv.FormatBool(v.Value)
	case *types.AttributeValueMemberNULL:
		return "NULL"
	case *types.AttributeValueMemberSS:
		return quoted("SS", v.Value, true)
	case *types.AttributeValueMemberNS:
		return quoted("NS", v.Value, true)
	case *types.AttributeValueMemberBS:
		bs := make([]string, len(v.Value))
		for i, b := range v.Value {
			bs[i] = string(b)
		}
		return quoted("BS", bs, true)
	case *types.AttributeValueMemberL:
		parts := make([]string, len(v.Value))
		for i, e := range v.Value {
			parts[i] = canonical(e)
		}
		return "L[" + strings.Join(parts, ",") + "]"
	case *types.AttributeValueMemberM:
		return "M{" + canonicalItem(v.Value) + "}"
	}
	return fmt.Sprintf("%#v", av) // a type this package does not know
}
