package route

import (
	"errors"
	"sort"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	"github.com/clickfleet/clickfleet/messages"
)

// eventTypeName is the CEL type of e.
const eventTypeName = "clickfleet.Event"

// field is one event field a predicate may use: get returns its value (string, int64 or float64) and
// whether it is present.
type field struct {
	name string
	typ  *types.Type
	get  func(ev *messages.Event) (any, bool)
}

func str(name string, v func(ev *messages.Event) string) *field {
	return &field{name: name, typ: types.StringType, get: func(ev *messages.Event) (any, bool) {
		s := v(ev)
		return s, s != ""
	}}
}

func extra(name string, bit messages.AdditionalFields, v func(a *messages.AdditionalData) any, t *types.Type) *field {
	return &field{name: name, typ: t, get: func(ev *messages.Event) (any, bool) {
		if !ev.AdditionalData.Has(bit) {
			return nil, false
		}
		return v(ev.AdditionalData), true
	}}
}

var fields = []*field{
	str("event_name", func(ev *messages.Event) string { return ev.EventName }),
	str("user_id", func(ev *messages.Event) string { return ev.UserID }),
	str("device_type", func(ev *messages.Event) string { return ev.DeviceType }),
	str("event_type", func(ev *messages.Event) string { return ev.EventType }),
	str("pixel_id", func(ev *messages.Event) string { return ev.PixelID }),
	str("click_id", func(ev *messages.Event) string { return ev.ClickID }),
	str("user_ip", func(ev *messages.Event) string { return ev.UserIP }),
	str("timestamp", func(ev *messages.Event) string { return ev.Timestamp }),
	str("insertion_timestamp", func(ev *messages.Event) string { return ev.InsertionTimestamp }),
	str("schema", func(ev *messages.Event) string { return ev.Schema.String() }),
	{name: "event_time_ms", typ: types.IntType, get: func(ev *messages.Event) (any, bool) { return ev.EventTimeMs, true }},
	extra("percent_viewed", messages.HasPercentViewed, func(a *messages.AdditionalData) any { return a.PercentViewed }, types.DoubleType),
	extra("time_on_data", messages.HasTimeOnData, func(a *messages.AdditionalData) any { return a.TimeOnData }, types.DoubleType),
	extra("price", messages.HasPrice, func(a *messages.AdditionalData) any { return a.Price }, types.DoubleType),
	extra("product_id", messages.HasProductID, func(a *messages.AdditionalData) any { return a.ProductID }, types.IntType),
}

var byName = func() map[string]*field {
	m := make(map[string]*field, len(fields))
	for _, f := range fields {
		m[f.name] = f
	}
	return m
}()

// Fields returns the names of the fields a predicate or a projection may use, sorted.
func Fields() []string {
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		out = append(out, f.name)
	}
	sort.Strings(out)
	return out
}

// errAbsent is the evaluation error of an absent field read through e.
var errAbsent = errors.New("route: field absent")

// provider declares e's type, its fields and how to read them from a *messages.Event; other types are
// the standard registry's.
type provider struct{ *types.Registry }

func (p provider) FindStructType(name string) (*types.Type, bool) {
	if name == eventTypeName {
		return types.NewTypeTypeWithParam(types.NewObjectType(eventTypeName)), true
	}
	return p.Registry.FindStructType(name)
}

func (p provider) FindStructFieldNames(name string) ([]string, bool) {
	if name == eventTypeName {
		return Fields(), true
	}
	return p.Registry.FindStructFieldNames(name)
}

func (p provider) FindStructFieldType(name, fieldName string) (*types.FieldType, bool) {
	if name != eventTypeName {
		return p.Registry.FindStructFieldType(name, fieldName)
	}
	f, ok := byName[fieldName]
	if !ok {
		return nil, false
	}
	return &types.FieldType{
		Type: f.typ,
		IsSet: func(target any) bool {
			ev, ok := target.(*messages.Event)
			if !ok {
				return false
			}
			_, set := f.get(ev)
			return set
		},
		GetFrom: func(target any) (any, error) {
			ev, ok := target.(*messages.Event)
			if !ok {
				return nil, errAbsent
			}
			v, set := f.get(ev)
			if !set {
				return nil, errAbsent
			}
			return v, nil
		},
	}, true
}

// newEnv returns the environment predicates compile in: e and every field bare.
func newEnv() (*cel.Env, error) {
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, err
	}
	opts := []cel.EnvOption{
		cel.CustomTypeProvider(provider{reg}),
		cel.CustomTypeAdapter(reg),
		cel.CrossTypeNumericComparisons(true),
		cel.Variable("e", types.NewObjectType(eventTypeName)),
	}
	for _, f := range fields {
		opts = append(opts, cel.Variable(f.name, f.typ))
	}
	return cel.NewEnv(opts...)
}
