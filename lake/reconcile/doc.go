// Package reconcile compares the sessions the lake implies (the lab's sessionization run as a batch over
// the archived events) with the rows the streaming side wrote to the DynamoDB sessions table: the check
// Lambda-architecture users run to trust a streaming pipeline.
//
// [Compare] is a pure function of the two sides; [ReadTable] reads the table's rows of a range (one
// filtered, consistent, parallel Scan); [Store] and [Load] keep the last result as JSON in the lake
// ([ResultKey], read by the dashboard); [Result.WriteText] prints it.
//
// A session belongs to a range when its start (start_ms: the event time of its first-arrived event, the
// time in its session id) is in [From, To). The same rule selects the lake's sessions and the table's
// rows, so a session is compared on both sides or on neither. Sessions the lake sees still open at the
// range's end (a later event could continue them, and the table's row may lag until the streaming side
// closes them) are reported apart, with the table's row when there is one, and are never differences.
//
// It does not compute sessions (package report does, over the lake) and does not write the table.
package reconcile
