package report

import (
	"fmt"
	"regexp"
	"strings"
)

// SessionsReport is the report whose SQL (sql/sessions.sql) sessionizes the events table as the actors
// do (docs/contracts.md, "Sessions"), one row per session with the columns of messages.Session but
// updated_ms. A Runner defines the view sessions from it for every report that reads it (Report.Sessions),
// over the range's events plus a margin (see Runner.Sessions), with one more column, open.
const SessionsReport = "sessions"

// SessionGapMs is the session gap sql/sessions.sql applies: the lab's 10 * 1000 ms, the actors' default
// (--session-gap). A fleet run with another gap gives other sessions than the lake's report.
const SessionGapMs = 10_000

// SessionsWindow is how many of a user's latest new click ids sql/sessions.sql compares a click id with to
// drop a producer's retry: the actors' window (package session, RecentClicksSize).
const SessionsWindow = 32

// readsSessions matches SQL that reads the sessions view.
var readsSessions = regexp.MustCompile(`(?i)\b(?:from|join)\s+sessions\b`)

// sessionsBody returns sql/sessions.sql without its description line and trailing blanks.
func sessionsBody() string {
	_, body, _ := strings.Cut(reports[SessionsReport].SQL, "\n")
	return strings.TrimSpace(body)
}

// SessionsView returns the statement that defines the view sessions over the view or table events:
// sql/sessions.sql as CREATE OR REPLACE VIEW, which DuckDB and Athena both accept. The Runner's own view
// adds the column open and the range; this one has neither.
func SessionsView() string {
	return "CREATE OR REPLACE VIEW sessions AS\n" + sessionsBody() + ";\n"
}

// AthenaQuery returns the SQL of the report called name as it runs on Athena over the Glue tables that
// 'clickfleet catalog' emits: the file itself, or, for a report that reads the sessions view, the file
// with sql/sessions.sql inlined as its first WITH query (Athena has no such view), its description line
// first. Federated reports (last_search) read Redis and PostgreSQL, which Athena cannot: an error.
func AthenaQuery(name string) (string, error) {
	rep, err := Lookup(name)
	if err != nil {
		return "", err
	}
	if rep.Federated {
		return "", fmt.Errorf("report: %s reads Redis and PostgreSQL, which Athena cannot without connectors", name)
	}
	if !rep.Sessions || name == SessionsReport {
		return rep.SQL, nil
	}
	first, body, _ := strings.Cut(rep.SQL, "\n")
	body = strings.TrimSpace(body)
	with := "WITH sessions AS (\n" + indent(sessionsBody()) + "\n)"
	if rest, ok := strings.CutPrefix(body, "WITH "); ok {
		return first + "\n" + with + ",\n" + rest + "\n", nil
	}
	return first + "\n" + with + "\n" + body + "\n", nil
}

// indent indents every non-empty line of s by two spaces.
func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = "  " + l
		}
	}
	return strings.Join(lines, "\n")
}
