package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/clickfleet/clickfleet/actors/route"
	"github.com/clickfleet/clickfleet/internal/settings"
)

// routeFlags are the route settings consume and setup share: repeated --route NAME=STREAM:EXPR, or a
// --routes-file.
type routeFlags struct {
	routes []string
	file   string
}

func (r *routeFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&r.routes, "route", nil, `an output route, NAME=STREAM:EXPR: events matching the CEL predicate EXPR go, whole and enriched, to STREAM (repeatable; replaces the default route, offers=<offers-stream>:event_name == "ViewContent" && percent_viewed > 60)`)
	f.StringVar(&r.file, "routes-file", "", "YAML file of output routes (name, stream, when, fields, enrich); instead of --route")
}

// load returns the configured routes, nil when none is (the default route then applies). Its errors are
// usage errors naming the flag.
func (r *routeFlags) load() ([]route.Route, error) {
	switch {
	case r.file != "" && len(r.routes) > 0:
		return nil, usagef("--route and --routes-file (CLICKFLEET_ROUTES_FILE) are alternatives: give one")
	case r.file != "":
		data, err := os.ReadFile(r.file)
		if err != nil {
			return nil, usagef("--routes-file (CLICKFLEET_ROUTES_FILE): %v", err)
		}
		rs, err := route.ParseFile(data)
		if err != nil {
			return nil, settingUsage(err, r.names())
		}
		return rs, nil
	}
	var rs []route.Route
	for _, s := range r.routes {
		rt, err := route.Parse(s)
		if err != nil {
			return nil, settingUsage(err, r.names())
		}
		rs = append(rs, rt)
	}
	return rs, nil
}

// names maps route.Field to the flag that set the routes.
func (r *routeFlags) names() map[string]string {
	if r.file != "" {
		return map[string]string{route.Field: "routes-file"}
	}
	return map[string]string{route.Field: "route"}
}

// flags returns the setting-to-flag map of consume with Routes named as r sets them.
func (r *routeFlags) flags(base map[string]string) map[string]string {
	m := make(map[string]string, len(base)+1)
	for k, v := range base {
		m[k] = v
	}
	m[route.Field] = r.names()[route.Field]
	return m
}

// compile checks routes (the default one when routes is nil) and returns the streams they write.
func compileRoutes(routes []route.Route, offersStream, offerEvent string, offerMinPercent float64, names map[string]string) ([]string, error) {
	if len(routes) == 0 {
		routes = []route.Route{route.Offers(offersStream, offerEvent, offerMinPercent)}
	}
	set, err := route.Compile(routes)
	if err != nil {
		var se *settings.Error
		if errors.As(err, &se) {
			return nil, settingUsage(err, names)
		}
		return nil, fmt.Errorf("routes: %w", err)
	}
	return set.Streams(), nil
}
