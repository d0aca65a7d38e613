// clickfleet dashboard: fetches /api/<chart> for the chosen range and /api/fleet, draws them with ECharts,
// and refreshes on the server's interval. A source that is down is shown as such; its chart is cleared,
// never drawn as zeros. window.dashboard exposes the charts and the last answers (the browser tests read
// them).
"use strict";
(function () {
  const charts = ["event_ratio", "requests_by_state", "requests_by_city", "actions_per_customer", "top_regions",
    "sessions_by_hour", "session_length", "events_per_session", "sessions_by_device"];
  const state = { charts: {}, answers: {}, loads: {}, fleet: null, fleetLoads: 0, reconcile: null, reconcileLoads: 0, errors: [], range: { from: "", to: "" } };
  window.dashboard = state;

  const $ = (sel) => document.querySelector(sel);
  const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  const fmt = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { maximumFractionDigits: digits ?? 0 }));

  // ---- the time range (whole UTC hours, as the report's --from/--to)
  const hourISO = (d) => d.toISOString().slice(0, 13); // 2026-12-01T10
  const toInput = (s) => (s ? s.slice(0, 13) + ":00" : "");
  function presetRange(p) {
    if (p === "all") return { from: "", to: "" };
    const hours = parseInt(p, 10);
    const from = new Date(Date.now() - hours * 3600e3);
    return { from: hourISO(from), to: "" };
  }
  function initRange() {
    const q = new URLSearchParams(location.search);
    if (q.has("from") || q.has("to")) {
      $("#preset").value = "custom";
      state.range = { from: q.get("from") || "", to: q.get("to") || "" };
    } else {
      if (q.has("range")) $("#preset").value = q.get("range");
      state.range = presetRange($("#preset").value);
    }
    $("#from").value = toInput(state.range.from);
    $("#to").value = toInput(state.range.to);
    $("#preset").addEventListener("change", () => {
      if ($("#preset").value !== "custom") {
        const r = presetRange($("#preset").value);
        $("#from").value = toInput(r.from);
        $("#to").value = toInput(r.to);
      }
    });
    for (const id of ["#from", "#to"]) $(id).addEventListener("input", () => ($("#preset").value = "custom"));
    $("#range").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const p = $("#preset").value;
      if (p === "custom") {
        state.range = { from: $("#from").value.slice(0, 13), to: $("#to").value.slice(0, 13) };
      } else {
        state.range = presetRange(p);
      }
      const q = new URLSearchParams();
      if (p === "custom") {
        if (state.range.from) q.set("from", state.range.from);
        if (state.range.to) q.set("to", state.range.to);
      } else {
        q.set("range", p);
      }
      history.replaceState(null, "", "?" + q.toString());
      refreshCharts();
    });
  }
  function rangeQuery() {
    const $preset = $("#preset").value;
    if ($preset !== "custom") state.range = presetRange($preset); // a relative range moves with the clock
    const q = new URLSearchParams();
    if (state.range.from) q.set("from", state.range.from);
    if (state.range.to) q.set("to", state.range.to);
    return q.toString();
  }

  // ---- status lines
  function setStatus(name, kind, text) {
    const el = document.querySelector(`[data-status="${name}"]`);
    el.className = "status" + (kind ? " " + kind : "");
    el.textContent = text || "";
    el.dataset.kind = kind || "ok";
    const panel = $("#panel-" + name);
    if (panel) panel.classList.toggle("is-down", kind === "down");
  }

  // ---- charts
  const base = { animation: false, textStyle: { fontFamily: "DejaVu Sans, sans-serif" } };
  function instance(name) {
    if (!state.charts[name]) state.charts[name] = echarts.init(document.getElementById("chart-" + name), null, { renderer: "canvas" });
    return state.charts[name];
  }
  const draw = {
    event_ratio(rows) {
      instance("event_ratio").setOption({
        ...base,
        tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
        legend: { bottom: 0 },
        series: [{ name: "events", type: "pie", radius: ["34%", "58%"], center: ["50%", "46%"],
          label: { formatter: "{b}\n{d}%", overflow: "none" }, labelLine: { length: 8, length2: 8 },
          data: rows.map((r) => ({ name: r.event_name, value: r.events })) }],
      }, true);
    },
    requests_by_state(rows) {
      const max = Math.max(1, ...rows.map((r) => r.requests));
      instance("requests_by_state").setOption({
        ...base,
        tooltip: { trigger: "item", formatter: (p) => `${p.name}: ${isNaN(p.value) ? "no requests" : p.value}` },
        visualMap: { min: 0, max, left: "left", bottom: 0, calculable: false, text: ["more", "fewer"], inRange: { color: ["#c6dbef", "#08306b"] } },
        series: [{ name: "requests", type: "map", map: "us-states", aspectScale: 1, roam: false, emphasis: { label: { show: false } },
          itemStyle: { areaColor: "#eef1f5", borderColor: "#9aa5b1" },
          data: rows.map((r) => ({ name: r.state, value: r.requests })) }],
      }, true);
    },
    requests_by_city(rows) {
      const placed = rows.filter((r) => r.latitude !== null && r.longitude !== null);
      const max = Math.max(1, ...placed.map((r) => r.requests));
      instance("requests_by_city").setOption({
        ...base,
        tooltip: { trigger: "item", formatter: (p) => `${esc(p.name)}: ${p.value[2]} requests` },
        geo: { map: "world", roam: true, itemStyle: { areaColor: "#eef1f5", borderColor: "#9aa5b1" }, emphasis: { disabled: true } },
        series: [{ name: "requests", type: "scatter", coordinateSystem: "geo",
          symbolSize: (v) => 6 + 30 * Math.sqrt(v[2] / max), itemStyle: { color: "rgba(8,48,107,.65)" },
          data: placed.map((r) => ({ name: `${r.city}, ${r.region}, ${r.country}`, value: [r.longitude, r.latitude, r.requests] })) }],
      }, true);
    },
    top_regions(rows) {
      instance("top_regions").setOption({
        ...base,
        tooltip: { trigger: "axis" },
        grid: { left: 8, right: 40, top: 8, bottom: 8, containLabel: true },
        xAxis: { type: "value" },
        yAxis: { type: "category", inverse: true, data: rows.map((r) => `${r.region} (${r.country})`) },
        series: [{ name: "requests", type: "bar", label: { show: true, position: "right" }, data: rows.map((r) => r.requests) }],
      }, true);
    },
    sessions_by_hour(rows) { bars("sessions_by_hour", rows.map((r) => r.hour), rows.map((r) => r.sessions), "sessions"); },
    session_length(rows) { bars("session_length", rows.map((r) => r.bucket), rows.map((r) => r.sessions), "sessions"); },
    events_per_session(rows) { bars("events_per_session", rows.map((r) => r.bucket), rows.map((r) => r.sessions), "sessions"); },
    sessions_by_device(rows) {
      instance("sessions_by_device").setOption({
        ...base,
        tooltip: { trigger: "item", formatter: "{b}: {c} ({d}%)" },
        legend: { bottom: 0 },
        series: [{ name: "sessions", type: "pie", radius: ["34%", "58%"], center: ["50%", "46%"],
          label: { formatter: "{b}\n{d}%", overflow: "none" }, labelLine: { length: 8, length2: 8 },
          data: rows.map((r) => ({ name: r.device_type, value: r.sessions })) }],
      }, true);
    },
    actions_per_customer(rows) {
      // Pivot the long rows (user_id, name, event_name, events) into a customer × event table.
      const events = [...new Set(rows.map((r) => r.event_name))].sort();
      const users = new Map();
      for (const r of rows) {
        const k = r.user_id;
        if (!users.has(k)) users.set(k, { user_id: r.user_id, name: r.name, counts: {} });
        const u = users.get(k);
        if (u.name === null && r.name !== null) u.name = r.name;
        u.counts[r.event_name] = (u.counts[r.event_name] || 0) + r.events;
      }
      const head = `<thead><tr><th>customer</th><th>name</th>${events.map((e) => `<th class="num">${esc(e)}</th>`).join("")}<th class="num">total</th></tr></thead>`;
      const byID = new Intl.Collator("en", { numeric: true }); // 2 before 10
      const body = [...users.values()].sort((a, b) => byID.compare(a.user_id, b.user_id)).map((u) => {
        const cells = events.map((e) => `<td class="num" data-event="${esc(e)}">${u.counts[e] ?? ""}</td>`).join("");
        const total = Object.values(u.counts).reduce((a, b) => a + b, 0);
        return `<tr data-user="${esc(u.user_id)}"><td>${esc(u.user_id)}</td><td>${esc(u.name ?? "")}</td>${cells}<td class="num">${total}</td></tr>`;
      }).join("");
      $("#table-actions_per_customer").innerHTML = head + "<tbody>" + body + "</tbody>";
    },
  };
  // A vertical bar chart: one bar per label, in the rows' order.
  function bars(name, labels, values, what) {
    instance(name).setOption({
      ...base,
      tooltip: { trigger: "axis" },
      grid: { left: 8, right: 16, top: 16, bottom: 8, containLabel: true },
      xAxis: { type: "category", data: labels, axisLabel: { hideOverlap: true } },
      yAxis: { type: "value", minInterval: 1 },
      series: [{ name: what, type: "bar", itemStyle: { color: "#2f6db5" }, data: values }],
    }, true);
  }
  function clear(name) {
    if (name === "actions_per_customer") $("#table-actions_per_customer").innerHTML = "";
    else if (state.charts[name]) state.charts[name].clear();
  }

  async function loadChart(name, query) {
    let res, body;
    try {
      res = await fetch(`/api/${name}?${query}`, { credentials: "same-origin" });
      body = await res.json();
    } catch (e) {
      state.answers[name] = { status: 0, error: String(e) };
      clear(name);
      setStatus(name, "down", "the dashboard server does not answer: " + e);
      return;
    }
    state.answers[name] = { status: res.status, body };
    if (res.status === 200) {
      if (body.empty) {
        clear(name);
        setStatus(name, "empty", "no events in this range");
      } else {
        draw[name](body.rows);
        setStatus(name, "", "");
      }
      state.loads[name] = (state.loads[name] || 0) + 1;
      return;
    }
    clear(name);
    if (res.status === 503) setStatus(name, "down", `source down: ${body.source || "?"} — ${body.error}`);
    else setStatus(name, "down", `error ${res.status}: ${body.error}`);
  }

  async function refreshCharts() {
    const q = rangeQuery();
    await Promise.all(charts.map((n) => loadChart(n, q)));
    const r = state.range;
    $("#updated").textContent = `range ${r.from || "the beginning"} – ${r.to || "now"} (UTC hours) · updated ${new Date().toISOString().slice(11, 19)} UTC`;
  }

  // ---- the last reconciliation (clickfleet reconcile's stored result)
  function reconcileHTML(r, location) {
    const s = r.summary;
    const range = `[${r.from || "the beginning"}, ${r.to || "the end"})`;
    let html = `<p data-verdict="${r.equal ? "equal" : "different"}"><span class="badge ${r.equal ? "equal" : "different"}">${r.equal ? "equal" : "different"}</span> ` +
      `ran ${esc(String(r.at).slice(0, 19).replace("T", " "))} UTC · lake ${esc(r.lake_url)} against table ${esc(r.table)} · sessions starting in ${esc(range)}</p>` +
      `<p id="reconcile-summary">${s.lake_sessions} sessions compared: ${s.equal} equal, ${s.missing} missing from the table, ` +
      `${s.extra} extra in the table, ${s.differing} differing · ${s.open_sessions} open at the range's end (not compared) · ${s.table_rows} table rows in the range</p>`;
    for (const n of r.notes || []) html += `<p class="muted">note: ${esc(n)}</p>`;
    const diffs = r.differences || [];
    if (diffs.length) {
      const shown = diffs.slice(0, 200);
      const val = (v) => (v === null || v === undefined ? "" : typeof v === "object" ? Object.entries(v).map(([k, x]) => `${k} ${x}`).join(", ") : String(v));
      html += `<div class="tablewrap"><table id="reconcile-differences"><thead><tr><th>difference</th><th>session</th><th>field</th><th>lake</th><th>table</th></tr></thead><tbody>` +
        shown.map((d) => `<tr data-kind="${esc(d.kind)}" data-session="${esc(d.session_id)}" data-field="${esc(d.field || "")}"><td>${esc(d.kind)}</td><td>${esc(d.session_id)}</td>` +
          `<td>${esc(d.field || "")}</td><td class="wrap">${esc(val(d.lake))}</td><td class="wrap">${esc(val(d.table))}</td></tr>`).join("") +
        `</tbody></table></div>`;
      if (diffs.length > shown.length) html += `<p class="muted">${diffs.length - shown.length} more differences: see ${esc(location)}</p>`;
    }
    return html;
  }
  async function loadReconcile() {
    let res, body;
    try {
      res = await fetch("/api/reconcile", { credentials: "same-origin" });
      body = await res.json();
    } catch (e) {
      setStatus("reconcile", "down", "the dashboard server does not answer: " + e);
      return;
    }
    state.reconcile = { status: res.status, body };
    state.reconcileLoads++;
    if (res.status !== 200) {
      $("#reconcile").innerHTML = "";
      setStatus("reconcile", "down", res.status === 503 ? `source down: ${body.source || "?"} — ${body.error}` : `error ${res.status}: ${body.error}`);
      return;
    }
    if (!body.result) {
      $("#reconcile").innerHTML = "";
      setStatus("reconcile", "empty", body.message || "no reconciliation has run");
      return;
    }
    $("#reconcile").innerHTML = reconcileHTML(body.result, body.location || "");
    setStatus("reconcile", "", "");
  }

  // ---- open sessions, from the workers' clickfleet_actors_sessions_open (in the fleet snapshot)
  function showOpenSessions(snap) {
    const reporting = snap.workers.filter((w) => w.up && w.open_sessions !== null && w.open_sessions !== undefined);
    const down = snap.workers.filter((w) => !w.up).length;
    if (!reporting.length) {
      $("#sessions-open").textContent = "–";
      setStatus("sessions_open", down ? "down" : "empty", down ? `no consume worker answers (${down} down)` : "no consume worker among --workers reports open sessions");
      return;
    }
    $("#sessions-open").textContent = fmt(snap.totals.open_sessions);
    $("#sessions-open").dataset.value = snap.totals.open_sessions;
    setStatus("sessions_open", down ? "down" : "", down ? `${down} worker(s) down: their shards' sessions count again when another worker loads their users` : "");
    $("#sessions-open-detail").textContent = `sessions started and not yet closed, as of the last flush, in ${reporting.length} consume worker(s): ` +
      reporting.map((w) => `${w.worker_id || w.url} ${fmt(w.open_sessions)}`).join(", ");
  }

  // ---- fleet
  function fleetHTML(snap) {
    const workersById = {};
    for (const w of snap.workers) if (w.worker_id) workersById[w.worker_id] = w;
    let html = "";
    for (const a of snap.apps) {
      html += `<div class="fleet-app" data-app="${esc(a.app)}"><h3>${esc(a.app)} <span class="muted">lease table ${esc(a.table)}</span></h3>`;
      if (a.error) {
        html += `<div class="status down" data-app-error="${esc(a.app)}">source down: ${esc(a.error)}</div></div>`;
        continue;
      }
      const leases = Object.entries(a.leases).filter(([o]) => o).map(([o, n]) => `${esc(o)}: ${n}`).join(", ");
      html += `<p class="muted">leases per worker: ${leases || "none"}${a.leases[""] ? ` · unowned: ${a.leases[""]}` : ""}</p>`;
      html += `<table><thead><tr><th>shard</th><th>owner</th><th>state</th><th class="num">lag (s)</th><th class="num">behind (ms)</th><th>checkpoint</th><th>why</th></tr></thead><tbody>`;
      for (const s of a.shards) {
        html += `<tr data-shard="${esc(s.shard_id)}" data-owner="${esc(s.owner)}" data-state="${esc(s.state)}"><td>${esc(s.shard_id)}</td><td>${esc(s.owner || "–")}</td>` +
          `<td><span class="badge ${esc(s.state)}">${esc(s.state)}</span></td><td class="num">${fmt(s.lag_seconds, 1)}</td><td class="num">${fmt(s.millis_behind)}</td>` +
          `<td>${esc(s.checkpoint.length > 24 ? "…" + s.checkpoint.slice(-20) : s.checkpoint)}</td><td class="muted">${esc(s.reason || "")}</td></tr>`;
      }
      html += `</tbody></table></div>`;
    }
    if (snap.workers.length) {
      html += `<h3>workers</h3><table><thead><tr><th>worker</th><th>app</th><th>/metrics</th><th class="num">leases</th><th class="num">records/s</th><th class="num">lag (s)</th><th class="num">live users</th><th class="num">open sessions</th><th class="num">archive objects</th></tr></thead><tbody>`;
      for (const w of snap.workers) {
        const objs = w.archive_objects ? Object.values(w.archive_objects).reduce((a, b) => a + b, 0) : null;
        html += `<tr data-worker="${esc(w.worker_id || w.url)}" data-up="${w.up}"><td>${esc(w.worker_id || "?")}</td><td>${esc(w.app || "")}</td>` +
          `<td class="wrap"><span class="badge ${w.up ? "up" : "down"}">${w.up ? "up" : "down"}</span> <span class="muted">${esc(w.url)}${w.error ? " — " + esc(w.error) : ""}</span></td>` +
          `<td class="num">${fmt(w.leases_held)}</td><td class="num">${fmt(w.records_per_second, 1)}</td><td class="num">${fmt(w.lag_seconds, 1)}</td>` +
          `<td class="num">${fmt(w.live_users)}</td><td class="num">${fmt(w.open_sessions)}</td><td class="num">${fmt(objs)}</td></tr>`;
      }
      html += `</tbody></table>`;
    }
    return html;
  }
  async function refreshFleet() {
    let res, body;
    try {
      res = await fetch("/api/fleet", { credentials: "same-origin" });
      body = await res.json();
    } catch (e) {
      setStatus("fleet", "down", "the dashboard server does not answer: " + e);
      return;
    }
    if (res.status !== 200) {
      state.fleet = null;
      $("#fleet").innerHTML = "";
      $("#fleet-totals").textContent = "";
      setStatus("fleet", res.status === 503 && body.source === "fleet" ? "empty" : "down", body.error);
      $("#sessions-open").textContent = "–";
      setStatus("sessions_open", "down", "the fleet panel is down: " + body.error);
      return;
    }
    const snap = body.snapshot;
    state.fleet = snap;
    $("#fleet").innerHTML = fleetHTML(snap);
    const t = snap.totals;
    const objs = Object.values(t.archive_objects).reduce((a, b) => a + b, 0);
    $("#fleet-totals").textContent = `· ${t.workers_up} up, ${t.workers_down} down · ${fmt(t.records_per_second, 1)} records/s · ${fmt(t.live_users)} live users · ${fmt(t.open_sessions)} open sessions · ${fmt(objs)} archive objects`;
    showOpenSessions(snap);
    setStatus("fleet", body.stale ? "down" : "", body.stale ? `the fleet snapshot is ${Math.round(body.age_seconds)} s old: the collector is stuck` : "");
    state.fleetLoads++;
  }

  // ---- start
  async function start() {
    // Resize once per frame, and only charts whose box has a size (a map's view cannot be fitted into none).
    let resizing = false;
    window.addEventListener("resize", () => {
      if (resizing) return;
      resizing = true;
      requestAnimationFrame(() => {
        resizing = false;
        for (const c of Object.values(state.charts)) {
          const el = c.getDom();
          if (el.clientWidth > 0 && el.clientHeight > 0) c.resize();
        }
      });
    });
    initRange();
    const [cfg, us, world] = await Promise.all([
      fetch("/api/config", { credentials: "same-origin" }).then((r) => r.json()),
      fetch("/static/vendor/us-states.geo.json").then((r) => r.json()),
      fetch("/static/vendor/world-countries.geo.json").then((r) => r.json()),
    ]);
    echarts.registerMap("us-states", us);
    echarts.registerMap("world", world);
    state.config = cfg;
    $("#footer").innerHTML = `lake ${esc(cfg.lake || "")} · charts refresh every ${cfg.refresh_seconds} s, the fleet every ${cfg.fleet_refresh_seconds} s · ` +
      `<a href="/static/vendor/LICENSES.txt">third-party licences</a>`;
    setInterval(refreshCharts, cfg.refresh_seconds * 1000);
    // The last reconciliation is one small object: read as often as the fleet.
    setInterval(loadReconcile, cfg.fleet_refresh_seconds * 1000);
    if (cfg.fleet_configured) {
      setInterval(refreshFleet, cfg.fleet_refresh_seconds * 1000);
      await Promise.all([refreshCharts(), refreshFleet(), loadReconcile()]);
    } else {
      setStatus("fleet", "empty", "not configured: start the dashboard with --workers and --lease-table / --archive-lease-table");
      setStatus("sessions_open", "empty", "not configured: start the dashboard with --workers (the consume workers' ops servers)");
      await Promise.all([refreshCharts(), loadReconcile()]);
    }
    state.started = true;
  }
  start().catch((e) => {
    state.errors.push(String(e));
    console.error("dashboard failed to start:", e);
  });
})();
