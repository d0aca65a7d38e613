package lake_test

import (
	"fmt"
	"strings"

	"github.com/clickfleet/clickfleet/lake"
)

// The errors table's Athena DDL: columns from the one list, partition projection instead of a crawler.
func ExampleCatalog_AthenaDDL() {
	c := lake.Catalog{Location: "s3://clickfleet-lake/", Database: "clickfleet"}
	ddl := c.AthenaDDL(lake.Errors)
	for _, l := range strings.Split(ddl, "\n") {
		if strings.HasPrefix(l, "CREATE") || strings.HasPrefix(l, "PARTITIONED") || strings.HasPrefix(l, "LOCATION") || strings.Contains(l, "projection.hour") {
			fmt.Println(l)
		}
	}
	// Output:
	// CREATE EXTERNAL TABLE IF NOT EXISTS `clickfleet`.`errors` (
	// PARTITIONED BY (`year` string, `month` string, `day` string, `hour` string)
	// LOCATION 's3://clickfleet-lake/errors/'
	//   'projection.hour.type' = 'integer',
	//   'projection.hour.range' = '0,23',
	//   'projection.hour.digits' = '2'
}
