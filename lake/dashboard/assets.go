package dashboard

import "embed"

// assets are the page and everything it loads. static/vendor/ is made by the generate step from the npm
// packages pinned in deploy/local/package.json (npm ci there, which deploy/local/stack up runs):
//
//	go generate ./lake/dashboard     # node generate/assets.mjs
//
// It copies Apache ECharts' minified build and converts the US states (us-atlas, Albers USA projection)
// and the world's countries (world-atlas) from TopoJSON to GeoJSON with topojson-client. The output is
// checked in, so building needs no Node.js; TestAssetsUpToDate fails when it differs from what the
// pinned packages make.
//
//go:generate node generate/assets.mjs static/vendor
//go:embed static
var assets embed.FS
