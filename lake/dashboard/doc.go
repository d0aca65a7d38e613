// Package dashboard serves clickfleet's dashboard: one web page (the seed's QuickSight charts — the
// donut of event names, requests by US state and by city, actions per customer, the top 10 regions —,
// a sessions section — sessions per hour, session length, events per session, sessions by device, the
// open sessions now and the last reconciliation — and a live panel of the fleet), its JSON endpoints,
// and every asset it needs, embedded.
//
// The charts' rows come from a Datasets (in clickfleet, the report package's DuckDB runner over the
// lake; it is declared here so that this package does not link DuckDB). The fleet panel comes from a
// Fleet, which reads the lease tables (who owns which shard, and whether that is changing) and scrapes
// the workers' /metrics (lag per shard, leases held, records per second, live users, open sessions,
// archive objects) on an interval. The last reconciliation comes from a Reconciliations (in clickfleet,
// the result `clickfleet reconcile` stored in the lake).
//
// Endpoints: GET / (the page), /static/… (the page's assets), /api/<chart>?from=&to= (one chart's rows;
// 400 naming the bad field, 503 naming the source that is down), /api/charts (the chart names),
// /api/fleet (the latest fleet snapshot), /api/reconcile (the last reconciliation), /healthz. Access:
// open on loopback; otherwise a token (constant-time compared, never logged) or an authenticating proxy
// in front (TrustProxyAuth).
//
// It is not a general metrics UI: it knows clickfleet's metric names and lease tables only.
package dashboard
