package route

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/interpreter"
	"gopkg.in/yaml.v3"

	"github.com/clickfleet/clickfleet/internal/settings"
	"github.com/clickfleet/clickfleet/messages"
)

// Field is the setting every error of this package names (as a *settings.Error): a program maps it to
// its flags (--route, --routes-file).
const Field = "Routes"

// MaxRoutes bounds the routes of one Set.
const MaxRoutes = 64

// OffersName is the default route's name.
const OffersName = "offers"

// Route is one route's configuration.
type Route struct {
	// Name identifies the route in errors, logs and metrics: letters, digits, '-' and '_'. Required,
	// unique within a Set.
	Name string
	// Stream is the Kinesis stream that receives the route's outputs. Required; routes may share one.
	Stream string
	// Expr is the predicate, a CEL expression of type bool over the event's fields (see the package
	// doc). Required.
	Expr string
	// Fields, when not empty, is the projection: the fields written, in this order, flat (price, not
	// additional_data.price), absent ones left out; click_id is always written (first when not listed).
	// Empty: the whole event in its own shape, as the offers stream has always carried it.
	Fields []string
	// Enrich adds the user's name and the location of user_ip (name, country, region, city and the
	// geo_status mark) as the offers stream always has. Parse and ParseFile default it to true.
	Enrich bool
}

// Offers returns the default route, today's offers: events named event whose percent_viewed is present
// and above minPercent, whole and enriched, to stream. With the seed's settings ("clickstream-offers",
// "ViewContent", 60) it is offers=clickstream-offers:event_name == "ViewContent" && percent_viewed > 60.
func Offers(stream, event string, minPercent float64) Route {
	return Route{Name: OffersName, Stream: stream, Enrich: true,
		Expr: "event_name == " + strconv.Quote(event) + " && percent_viewed > " + strconv.FormatFloat(minPercent, 'g', -1, 64)}
}

// Parse parses one route flag, NAME=STREAM:EXPR (the predicate is everything after the first ':'), into
// a whole-event, enriched route. It checks the syntax of the flag only: Compile checks the rest.
func Parse(s string) (Route, error) {
	name, rest, ok1 := strings.Cut(s, "=")
	stream, expr, ok2 := strings.Cut(rest, ":")
	if !ok1 || !ok2 {
		return Route{}, settings.Invalid(Field, "%q is not NAME=STREAM:EXPR", s)
	}
	return Route{Name: strings.TrimSpace(name), Stream: strings.TrimSpace(stream), Expr: strings.TrimSpace(expr), Enrich: true}, nil
}

// fileRoute is a route as the file spells it.
type fileRoute struct {
	Name   string   `yaml:"name"`
	Stream string   `yaml:"stream"`
	When   string   `yaml:"when"`
	Fields []string `yaml:"fields"`
	Enrich *bool    `yaml:"enrich"`
}

// ParseFile parses a routes file:
//
//	routes:
//	  - name: purchases
//	    stream: clickstream-purchases
//	    when: event_name == "Purchase" && price > 100
//	    fields: [user_id, product_id, price]   # optional; default: the whole event
//	    enrich: false                           # optional; default: true
//
// Unknown keys are errors. It checks the file's shape only: Compile checks the routes. Errors are
// *settings.Error for Field, naming the line.
func ParseFile(data []byte) ([]Route, error) {
	var f struct {
		Routes []fileRoute `yaml:"routes"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		msg = strings.NewReplacer(" in type route.fileRoute", "", "unmarshal errors:\n  ", "", "\n  ", "; ").Replace(msg)
		return nil, settings.Invalid(Field, "routes file: %s", msg)
	}
	if len(f.Routes) == 0 {
		return nil, settings.Invalid(Field, "routes file: no routes (a top-level routes: list is required)")
	}
	rs := make([]Route, len(f.Routes))
	for i, r := range f.Routes {
		rs[i] = Route{Name: r.Name, Stream: r.Stream, Expr: r.When, Fields: r.Fields, Enrich: r.Enrich == nil || *r.Enrich}
	}
	return rs, nil
}

// Set is a list of compiled routes. It is read-only once compiled: safe for concurrent use.
type Set struct {
	routes []compiled
}

type compiled struct {
	Route
	prg    cel.Program
	fields []*field // the projection; nil for the whole event
}

// Compile checks and compiles routes, in order. Each route's predicate is parsed and type-checked
// against the event's fields: a syntax error, a type error, an unknown field or a predicate that is not a
// bool is an error naming the route, the line, the column and the offset in the expression. Errors are
// *settings.Error for Field.
func Compile(routes []Route) (*Set, error) {
	if len(routes) == 0 {
		return nil, settings.Invalid(Field, "no routes")
	}
	if len(routes) > MaxRoutes {
		return nil, settings.Invalid(Field, "%d routes, at most %d", len(routes), MaxRoutes)
	}
	env, err := newEnv()
	if err != nil {
		return nil, fmt.Errorf("route: CEL environment: %w", err)
	}
	s := &Set{routes: make([]compiled, 0, len(routes))}
	seen := map[string]bool{}
	for _, r := range routes {
		bad := func(format string, args ...any) error {
			return settings.Invalid(Field, "route %q: %s", r.Name, fmt.Sprintf(format, args...))
		}
		switch {
		case r.Name == "":
			return nil, settings.Invalid(Field, "a route has no name (stream %q, expression %q)", r.Stream, r.Expr)
		case strings.IndexFunc(r.Name, func(c rune) bool {
			return !(c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z')
		}) >= 0:
			return nil, bad("the name may hold only letters, digits, '-' and '_'")
		case seen[r.Name]:
			return nil, bad("the name is used twice")
		case r.Stream == "":
			return nil, bad("no stream")
		case strings.TrimSpace(r.Expr) == "":
			return nil, bad("no expression")
		}
		seen[r.Name] = true
		c := compiled{Route: r}
		c.Fields = append([]string(nil), r.Fields...)
		for _, n := range r.Fields {
			f, ok := byName[n]
			if !ok {
				return nil, bad("fields: unknown field %q (known: %s)", n, strings.Join(Fields(), ", "))
			}
			c.fields = append(c.fields, f)
		}
		ast, iss := env.Compile(r.Expr)
		if err := iss.Err(); err != nil {
			return nil, bad("%s", describe(r.Expr, iss))
		}
		if !ast.OutputType().IsExactType(types.BoolType) {
			return nil, bad("the expression is a %s, not a bool", ast.OutputType())
		}
		if c.prg, err = env.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
			return nil, bad("%v", err)
		}
		s.routes = append(s.routes, c)
	}
	return s, nil
}

// describe words the first issue: line and column (1-based) and offset (0-based, in bytes) in expr.
func describe(expr string, iss *cel.Issues) string {
	errs := iss.Errors()
	if len(errs) == 0 {
		return iss.String()
	}
	e := errs[0]
	line, col := e.Location.Line(), e.Location.Column()
	off := col
	for i, l := 1, expr; i < line; i++ {
		n := strings.IndexByte(l, '\n')
		if n < 0 {
			break
		}
		off += n + 1
		l = l[n+1:]
	}
	more := ""
	if len(errs) > 1 {
		more = fmt.Sprintf(" (and %d more)", len(errs)-1)
	}
	return fmt.Sprintf("line %d, column %d (offset %d): %s%s", line, col+1, off, e.Message, more)
}

// Len returns the number of routes.
func (s *Set) Len() int { return len(s.routes) }

// Route returns route i's configuration.
func (s *Set) Route(i int) Route { return s.routes[i].Route }

// Streams returns the streams of the routes, each once, in the routes' order.
func (s *Set) Streams() []string {
	var out []string
	for _, r := range s.routes {
		if !containsString(out, r.Stream) {
			out = append(out, r.Stream)
		}
	}
	return out
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Match returns the routes ev matches, bit i for route i. A predicate whose evaluation fails (it needed an
// absent field) does not match. Safe for concurrent use; ev is only read.
func (s *Set) Match(ev *messages.Event) uint64 {
	var m uint64
	act := activation{ev: ev}
	for i := range s.routes {
		out, _, err := s.routes[i].prg.Eval(&act)
		if err == nil && out == types.True {
			m |= 1 << i
		}
	}
	return m
}

// ErrEncode is wrapped by the errors of Encode.
var ErrEncode = errors.New("route: encode")

// Encode appends route i's output for ev to b: the whole event in its shape when the route has no
// projection, else a flat JSON object of its fields. The caller enriches ev (or not, as the route says)
// and fills its click id before.
func (s *Set) Encode(b []byte, i int, ev *messages.Event) ([]byte, error) {
	r := &s.routes[i]
	if r.fields == nil {
		out, err := ev.AppendJSON(b)
		if err != nil {
			return b, fmt.Errorf("%w: %w", ErrEncode, err)
		}
		return out, nil
	}
	b = append(b, '{')
	first := true
	put := func(name string, v any) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = strconv.AppendQuote(b, name)
		b = append(b, ':')
		switch v := v.(type) {
		case string:
			b = appendJSONString(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case float64:
			b = strconv.AppendFloat(b, v, 'f', -1, 64)
		}
	}
	if !containsString(r.Fields, "click_id") && ev.ClickID != "" {
		put("click_id", ev.ClickID)
	}
	for _, f := range r.fields {
		if v, ok := f.get(ev); ok {
			put(f.name, v)
		}
	}
	if r.Enrich {
		for _, kv := range [...][2]string{{"name", ev.Name}, {"country", ev.Country}, {"region", ev.Region}, {"city", ev.City}} {
			if kv[1] != "" {
				put(kv[0], kv[1])
			}
		}
	}
	return append(b, '}'), nil
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// activation resolves the predicate's names against one event: e, and each field bare.
type activation struct{ ev *messages.Event }

func (a *activation) ResolveName(name string) (any, bool) {
	if name == "e" {
		return a.ev, true
	}
	if f, ok := byName[name]; ok {
		return f.get(a.ev)
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
