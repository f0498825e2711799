// Shared by the map pages: the page's data, and a Leaflet map whose bundled Natural Earth
// basemap always draws (no internet needed) under the online tile layer, which covers it
// wherever the browser can fetch tiles.
"use strict";

window.outpost = window.outpost || {};

outpost.pageData = function () {
  const el = document.getElementById("page-data");
  return el ? JSON.parse(el.textContent) : {};
};

// A transparent pixel for tiles that cannot load, so the basemap shows through instead of a
// broken-image icon.
const NO_TILE = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

outpost.createMap = function (elementId, tileUrl, options) {
  const map = L.map(elementId, Object.assign({ worldCopyJump: false, minZoom: 1, zoomSnap: 0.5 }, options || {}));
  map.createPane("basemap").style.zIndex = 150; // under the tile pane (200)
  const renderer = L.canvas({ pane: "basemap", padding: 0.5 });
  outpost.basemapReady = fetch("/static/basemap/countries.geojson")
    .then((r) => {
      if (!r.ok) throw new Error("basemap: HTTP " + r.status);
      return r.json();
    })
    .then((geojson) => {
      const layer = L.geoJSON(geojson, {
        pane: "basemap",
        renderer: renderer,
        interactive: false,
        style: { color: "#7d8c7a", weight: 0.6, fillColor: "#eef0e6", fillOpacity: 1 },
      }).addTo(map);
      outpost.basemapFeatures = geojson.features.length;
      document.getElementById(elementId).dataset.basemap = "ready";
      return layer;
    })
    .catch((e) => console.error(e));
  if (tileUrl) {
    const tiles = L.tileLayer(tileUrl, {
      maxZoom: 18,
      errorTileUrl: NO_TILE,
      attribution: '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors',
    });
    // A tile server that answers shows; one that doesn't leaves the basemap.
    tiles.on("tileload", () => (document.getElementById(elementId).dataset.tiles = "online"));
    tiles.addTo(map);
  }
  map.attributionControl.addAttribution("Natural Earth");
  return map;
};

// Splits a list of [lat, lon] where it crosses the antimeridian, so no segment is drawn across
// the whole map: the crossing point is interpolated and each side ends at ±180.
outpost.splitAtAntimeridian = function (points) {
  const segments = [];
  let current = [];
  for (let i = 0; i < points.length; i++) {
    const p = points[i];
    const prev = current[current.length - 1];
    if (prev && Math.abs(p[1] - prev[1]) > 180) {
      const east = prev[1] > 0; // crossing eastwards from +180 to -180
      const lon2 = east ? p[1] + 360 : p[1] - 360;
      const edge = east ? 180 : -180;
      const f = (edge - prev[1]) / (lon2 - prev[1]);
      const lat = prev[0] + f * (p[0] - prev[0]);
      current.push([lat, edge]);
      segments.push(current);
      current = [[lat, -edge]];
    }
    current.push(p);
  }
  if (current.length) segments.push(current);
  return segments;
};

outpost.formatLatLon = function (lat, lon) {
  const ns = lat >= 0 ? "N" : "S";
  const ew = lon >= 0 ? "E" : "W";
  return Math.abs(lat).toFixed(2) + "° " + ns + ", " + Math.abs(lon).toFixed(2) + "° " + ew;
};

outpost.compass = function (deg) {
  const names = ["N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW"];
  return names[Math.round((((deg % 360) + 360) % 360) / 22.5) % 16];
};
