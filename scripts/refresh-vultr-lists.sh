#!/usr/bin/env bash
# Refreshes the Vultr region and plan lists that `anycast validate` checks pops[].region and
# pops[].plan against (components/core/vultr-regions.json, vultr-plans.json), from Vultr's
# public API v2: GET /v2/regions and GET /v2/plans need no API key. A maintainer runs this with
# network access, reviews the diff (a region that vanished breaks the stacks that use it) and
# commits it; the package ships the files, so validation itself never needs the network.
set -euo pipefail
cd "$(dirname "$0")/.."

api="https://api.vultr.com/v2"
today="$(date -u +%F)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

curl -fsS --retry 3 "$api/regions?per_page=500" -o "$tmp/regions.json"
curl -fsS --retry 3 "$api/plans?type=all&per_page=500" -o "$tmp/plans.json"

# node is there wherever this package is developed; it keeps the files' shape in one place.
node - "$tmp" "$today" "$api" <<'EOF'
const fs = require("node:fs");
const path = require("node:path");
const [dir, today, api] = process.argv.slice(2);
const read = (f) => JSON.parse(fs.readFileSync(path.join(dir, f), "utf8"));
const how = "the API's answer, written by scripts/refresh-vultr-lists.sh";
const regions = read("regions.json").regions
    .map((r) => ({ id: r.id, city: r.city, country: r.country, continent: r.continent }))
    .sort((a, b) => a.id.localeCompare(b.id));
const plans = read("plans.json").plans.map((p) => p.id).sort();
if (regions.length < 10 || plans.length < 10) throw new Error(`too few entries (${regions.length} regions, ${plans.length} plans): not writing`);
const write = (file, doc) => fs.writeFileSync(path.join("components", "core", file), JSON.stringify(doc, null, 2) + "\n");
write("vultr-regions.json", { source: `Vultr API v2: GET ${api}/regions?per_page=500 (public, no API key)`, updated: today, how, regions });
write("vultr-plans.json", { source: `Vultr API v2: GET ${api}/plans?type=all&per_page=500 (public, no API key)`, updated: today, how, plans });
console.log(`refresh-vultr-lists: ${regions.length} regions, ${plans.length} plans, as of ${today}`);
EOF
git --no-pager diff --stat -- components/core/vultr-regions.json components/core/vultr-plans.json
