#!/usr/bin/env bash
# Build the MOAA website's front-end assets: `npm ci` from the committed package-lock.json,
# then copy the browser builds (UMD files, no bundler) and the world outline into the Python
# package's static/vendor/, which is served locally (no CDN, works offline).
# Needs node + npm at build time only; the running dashboard needs neither.
# Usage: apps/dashboard/web/build.sh   (what `make dashboard-assets` and the image build run)
set -euo pipefail
web="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="$web/../src/moaa/dashboard/static/vendor"
cd "$web"
# --ignore-scripts: no package here needs one (swagger-ui-dist pulls a telemetry postinstall).
npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
mkdir -p "$web/../src/moaa/dashboard/static"
tmp="$(mktemp -d "$web/../src/moaa/dashboard/static/.vendor.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
chmod 755 "$tmp"
nm="$web/node_modules"
cp "$nm/chart.js/dist/chart.umd.min.js" "$tmp/chart.umd.min.js"
cp "$nm/d3-array/dist/d3-array.min.js" "$tmp/d3-array.min.js"
cp "$nm/d3-geo/dist/d3-geo.min.js" "$tmp/d3-geo.min.js"
cp "$nm/topojson-client/dist/topojson-client.min.js" "$tmp/topojson-client.min.js"
cp "$nm/world-atlas/countries-110m.json" "$tmp/countries-110m.json"
cp "$nm/swagger-ui-dist/swagger-ui-bundle.js" "$nm/swagger-ui-dist/swagger-ui.css" "$tmp/"
mkdir -p "$tmp/licenses"
for pkg in chart.js d3-array d3-geo topojson-client world-atlas swagger-ui-dist; do
  cp "$nm/$pkg"/LICENSE* "$tmp/licenses/$pkg.LICENSE"
done
# Swap in the new folder whole, so a half-built vendor/ is never served.
rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
touch "$out/.stamp"
echo "dashboard assets → $out"
