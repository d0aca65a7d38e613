package main

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/spf13/cobra"

	"github.com/clickfleet/clickfleet/internal/provision"
	"github.com/clickfleet/clickfleet/messages"
)

func newSessionsCommand(*globals) *cobra.Command {
	var (
		table string
		users []string
		limit int
	)
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: "List session rows from the sessions table, per user (the lab's DESTINATION_SQL_STREAM)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			awsCfg, err := loadAWS(ctx)
			if err != nil {
				return err
			}
			db := dynamodb.NewFromConfig(awsCfg)
			var items []map[string]dtypes.AttributeValue
			if len(users) == 0 {
				p := dynamodb.NewScanPaginator(db, &dynamodb.ScanInput{TableName: aws.String(table)})
				for p.HasMorePages() && len(items) < limit {
					out, err := p.NextPage(ctx)
					if err != nil {
						return fmt.Errorf("scan %s: %w", table, err)
					}
					items = append(items, out.Items...)
				}
			}
			for _, u := range users {
				p := dynamodb.NewQueryPaginator(db, &dynamodb.QueryInput{TableName: aws.String(table),
					IndexName: aws.String(provision.SessionsUserIndex), KeyConditionExpression: aws.String("user_id = :u"),
					ExpressionAttributeValues: map[string]dtypes.AttributeValue{":u": &dtypes.AttributeValueMemberS{Value: u}}})
				for p.HasMorePages() {
					out, err := p.NextPage(ctx)
					if err != nil {
						return fmt.Errorf("query %s for user %s: %w", table, u, err)
					}
					items = append(items, out.Items...)
				}
			}
			rows := make([]messages.Session, 0, len(items))
			for _, it := range items {
				rows = append(rows, sessionFromItem(it))
			}
			slices.SortFunc(rows, func(a, b messages.Session) int {
				return cmp.Or(strings.Compare(a.UserID, b.UserID), cmp.Compare(a.StartMs, b.StartMs))
			})
			if len(rows) > limit {
				rows = rows[:limit]
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "session_id\tuser_id\tdevice_type\tsession_time\tlast event (UTC)\tevents")
			for _, s := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", s.SessionID, s.UserID, s.DeviceType, s.SessionTime,
					time.UnixMilli(s.LastEventMs).UTC().Format("15:04:05.000"), s.EventCount)
			}
			return tw.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&table, "sessions-table", messages.SessionsTable, "DynamoDB sessions table")
	f.StringArrayVar(&users, "user", nil, "show this user's sessions (repeatable; none: scan the table)")
	f.IntVar(&limit, "limit", 1000, "show at most this many rows")
	return cmd
}

func sessionFromItem(it map[string]dtypes.AttributeValue) messages.Session {
	str := func(k string) string {
		if v, ok := it[k].(*dtypes.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	num := func(k string) int64 {
		if v, ok := it[k].(*dtypes.AttributeValueMemberN); ok {
			n, _ := strconv.ParseInt(v.Value, 10, 64)
			return n
		}
		return 0
	}
	return messages.Session{SessionID: str("session_id"), UserID: str("user_id"), DeviceType: str("device_type"),
		SessionTime: str("session_time"), StartMs: num("start_ms"), LastEventMs: num("last_event_ms"),
		EventCount: num("event_count"), UpdatedMs: num("updated_ms")}
}
