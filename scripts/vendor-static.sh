#!/usr/bin/env bash
# Refreshes the third-party browser files in static/vendor/ from the npm registry. They are
# committed (and embedded in the binary), so neither building nor running Outpost needs npm or the
# internet; run this only to move to another version, then review the diff and static/vendor/README.md.
#
#   scripts/vendor-static.sh
set -euo pipefail
cd "$(dirname "$0")/.."

LEAFLET=leaflet@1.9.4
TERMINATOR=@joergdietrich/leaflet.terminator@1.3.0
WORLD_ATLAS=world-atlas@2.0.2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unpack() { # package@version -> directory holding the unpacked package
    local tgz
    tgz=$(cd "$work" && npm pack --silent "$1" | tail -n 1)
    mkdir -p "$work/${tgz%.tgz}"
    tar -xzf "$work/$tgz" -C "$work/${tgz%.tgz}"
    echo "$work/${tgz%.tgz}/package"
}

out=static/vendor
rm -rf "$out/leaflet" "$out/leaflet.terminator" "$out/world-atlas"
mkdir -p "$out/leaflet/images" "$out/leaflet.terminator" "$out/world-atlas"

pkg=$(unpack "$LEAFLET")
cp "$pkg/dist/leaflet.js" "$pkg/dist/leaflet.css" "$pkg/LICENSE" "$out/leaflet/"
cp "$pkg/dist/images/"*.png "$out/leaflet/images/"

pkg=$(unpack "$TERMINATOR")
cp "$pkg/L.Terminator.js" "$pkg/LICENSE" "$out/leaflet.terminator/"

# TopoJSON as published; build.rs turns it into the GeoJSON basemap the binary serves.
pkg=$(unpack "$WORLD_ATLAS")
cp "$pkg/countries-50m.json" "$pkg/LICENSE" "$out/world-atlas/"

echo "vendored $LEAFLET $TERMINATOR $WORLD_ATLAS into $out/"
