// The regions on the avalanche page's map, coloured by danger; choosing one opens its warning
// (the page itself is rendered on the server and works without this script).
"use strict";

(function () {
  const data = outpost.pageData();
  const COLOURS = { 0: "#ffffff", 1: "#ccff66", 2: "#ffff00", 3: "#ff9900", 4: "#ff0000", 5: "#000000" };
  const NOT_ASSESSED = "#c9ced6";
  const map = outpost.createMap("region-map", data.tile_url);
  map.setView([65, 15], 4);
  const markers = [];
  data.regions.forEach((r) => {
    const marker = L.circleMarker([r.latitude, r.longitude], {
      radius: r.selected ? 13 : 9,
      color: r.selected ? "#1f6feb" : "#333",
      weight: r.selected ? 3 : 1,
      fillColor: r.level === null ? NOT_ASSESSED : COLOURS[r.level],
      fillOpacity: 0.95,
    })
      .bindTooltip(r.name + ": " + r.label, { permanent: r.selected, direction: "top" })
      .on("click", () => (window.location.href = r.href))
      .addTo(map);
    markers.push(marker);
  });
  if (markers.length) {
    map.fitBounds(L.featureGroup(markers).getBounds(), { padding: [25, 25], maxZoom: 5 });
  }
  outpost.state = { regions: markers.length };
})();
