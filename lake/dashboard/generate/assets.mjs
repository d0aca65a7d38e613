// Makes lake/dashboard/static/vendor/ from the npm packages pinned in deploy/local/package.json:
//   echarts.min.js            Apache ECharts' minified build, as published
//   us-states.geo.json        us-atlas states-albers-10m (Albers USA, Alaska and Hawaii inset) as GeoJSON,
//                             y flipped (ECharts draws y up), coordinates rounded to 0.01 px
//   world-countries.geo.json  world-atlas countries-110m as GeoJSON, coordinates rounded to 0.01°
//   LICENSES.txt              the licences of what is copied
// Usage: node generate/assets.mjs OUTDIR   (run by `go generate ./lake/dashboard`)
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const local = join(here, "..", "..", "..", "deploy", "local");
const require = createRequire(join(local, "package.json"));
const out = process.argv[2];
if (!out) {
  console.error("usage: node generate/assets.mjs OUTDIR");
  process.exit(2);
}
let topojson;
try {
  topojson = require("topojson-client");
} catch (e) {
  console.error("topojson-client is not installed in deploy/local/node_modules: run deploy/local/stack up (or npm ci in deploy/local)");
  process.exit(1);
}
const pkgFile = (name, file) => require.resolve(`${name}/${file}`);
const version = (name) => JSON.parse(readFileSync(pkgFile(name, "package.json"))).version;
const want = { echarts: "6.1.0", "us-atlas": "3.0.1", "world-atlas": "2.0.2", "topojson-client": "3.1.0" };
for (const [name, v] of Object.entries(want)) {
  if (version(name) !== v) {
    console.error(`${name} ${version(name)} is installed, want ${v}: run npm ci in deploy/local`);
    process.exit(1);
  }
}
mkdirSync(out, { recursive: true });

const round = (k) => (x) => Math.round(x * k) / k;
function mapCoords(geom, f) {
  const ring = (r) => r.map(f);
  switch (geom.type) {
    case "Polygon":
      return { type: geom.type, coordinates: geom.coordinates.map(ring) };
    case "MultiPolygon":
      return { type: geom.type, coordinates: geom.coordinates.map((p) => p.map(ring)) };
    default:
      throw new Error(`unexpected geometry ${geom.type}`);
  }
}
function geojson(topo, object, f) {
  const fc = topojson.feature(topo, topo.objects[object]);
  return {
    type: "FeatureCollection",
    features: fc.features
      .filter((ft) => ft.geometry)
      .map((ft) => ({ type: "Feature", id: ft.id, properties: { name: ft.properties.name }, geometry: mapCoords(ft.geometry, f) })),
  };
}

writeFileSync(join(out, "echarts.min.js"), readFileSync(pkgFile("echarts", "dist/echarts.min.js")));
const r2 = round(100);
const states = JSON.parse(readFileSync(pkgFile("us-atlas", "states-albers-10m.json")));
writeFileSync(join(out, "us-states.geo.json"), JSON.stringify(geojson(states, "states", ([x, y]) => [r2(x), r2(-y)])) + "\n");
const world = JSON.parse(readFileSync(pkgFile("world-atlas", "countries-110m.json")));
writeFileSync(join(out, "world-countries.geo.json"), JSON.stringify(geojson(world, "countries", ([x, y]) => [r2(x), r2(y)])) + "\n");

const lic = (name, file) => `==== ${name} ${version(name)} (${file})\n\n` + readFileSync(pkgFile(name, file), "utf8").trim() + "\n\n";
writeFileSync(
  join(out, "LICENSES.txt"),
  "Third-party assets embedded in the clickfleet dashboard (made by lake/dashboard/generate/assets.mjs).\n" +
    "us-atlas and world-atlas are derived from the U.S. Census Bureau's cartographic boundaries and Natural Earth (public domain).\n\n" +
    lic("echarts", "LICENSE") + lic("echarts", "NOTICE") + lic("us-atlas", "LICENSE") + lic("world-atlas", "LICENSE") + lic("topojson-client", "LICENSE"),
);
