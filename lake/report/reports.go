package report

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed sql/*.sql
var sqlFiles embed.FS

// Report is one of the embedded reports.
type Report struct {
	// Name is the file's name without .sql.
	Name string
	// Description is the file's first comment line.
	Description string
	// SQL is the file's text.
	SQL string
	// Federated reports read redis_users and customers besides events.
	Federated bool
	// Unload reports are also written back to the lake under aggregates/<name>/.
	Unload bool
	// Sessions reports read the sessions view (see [SessionsReport]); the sessions report itself is one.
	Sessions bool
}

var reports = func() map[string]Report {
	out := map[string]Report{}
	ents, err := fs.ReadDir(sqlFiles, "sql")
	if err != nil {
		panic(err)
	}
	for _, e := range ents {
		b, err := sqlFiles.ReadFile(path.Join("sql", e.Name()))
		if err != nil {
			panic(err)
		}
		name := strings.TrimSuffix(e.Name(), ".sql")
		text := string(b)
		first, _, _ := strings.Cut(text, "\n")
		out[name] = Report{Name: name, Description: strings.TrimSpace(strings.TrimPrefix(first, "--")), SQL: text,
			Federated: strings.Contains(text, "redis_users") || strings.Contains(text, "customers"),
			Unload:    name == "events_by_country",
			Sessions:  name == SessionsReport || readsSessions.MatchString(text)}
	}
	return out
}()

// Names returns the reports' names, sorted.
func Names() []string {
	out := make([]string, 0, len(reports))
	for n := range reports {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the report called name; an error wrapping ErrUnknownReport, listing the known ones,
// when there is none.
func Lookup(name string) (Report, error) {
	r, ok := reports[name]
	if !ok {
		return Report{}, fmt.Errorf("%w %q; the reports are: %s", ErrUnknownReport, name, strings.Join(Names(), ", "))
	}
	return r, nil
}

// Errors a Runner returns (wrapped; match with errors.Is).
var (
	// ErrUnknownReport: no embedded report has the name asked for.
	ErrUnknownReport = errors.New("report: unknown report")
	// ErrEmptyLake: the lake holds no readable events object in the time range.
	ErrEmptyLake = errors.New("report: no events in the lake")
	// ErrSync: the lake could not be listed or fetched (S3 unreachable, a missing bucket, denied access).
	ErrSync = errors.New("report: sync the lake")
)

// SourceError is a failure of a server a federated report reads besides the lake: Redis or PostgreSQL.
// Field is the Config field that configures it ("Redis", "Postgres"), so that a program names its setting.
type SourceError struct {
	Server string // "Redis" or "PostgreSQL"
	Field  string
	Err    error
}

func (e *SourceError) Error() string { return fmt.Sprintf("report: %s: %v", e.Server, e.Err) }
func (e *SourceError) Unwrap() error { return e.Err }
