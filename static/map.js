// The live map (/): the ISS now with its footprint, the day/night terminator, the ground track
// for a chosen time range, the observer, and the upcoming passes. New positions arrive over
// server-sent events (/api/events); the page never polls the server.
"use strict";

(function () {
  const data = outpost.pageData();
  const $ = (id) => document.getElementById(id);
  const EARTH_RADIUS_KM = 6371;
  const DEFAULT_ALTITUDE_KM = 420;
  const TRACK_MAX_POINTS = 2000;

  // What the page shows, for people and for the browser test.
  const state = (outpost.state = { position: null, events: 0, trackSegments: [], passes: [], selectedPass: null, unusableTle: null });

  const map = outpost.createMap("map", data.tile_url);
  map.setView(data.observer ? [data.observer.latitude, data.observer.longitude] : [20, 0], 2);

  const night = L.terminator({ interactive: false, color: "#0b1d33", weight: 0, fillOpacity: 0.22 }).addTo(map);

  const issIcon = L.divIcon({
    className: "iss-icon",
    iconSize: [34, 34],
    html:
      '<svg viewBox="0 0 32 32" width="34" height="34"><g transform="rotate(-20 16 16)">' +
      '<rect x="4" y="13.5" width="8" height="5" fill="#ffcc33" stroke="#333" stroke-width=".6"/>' +
      '<rect x="20" y="13.5" width="8" height="5" fill="#ffcc33" stroke="#333" stroke-width=".6"/>' +
      '<rect x="12" y="12.5" width="8" height="7" rx="1.5" fill="#f5f7fa" stroke="#333" stroke-width=".8"/></g></svg>',
  });
  let issMarker = null;
  let footprint = null;
  const trackLine = L.polyline([], { color: "#ff7a00", weight: 2.5, opacity: 0.9, interactive: false }).addTo(map);
  const passLine = L.polyline([], { color: "#d000ff", weight: 4, opacity: 0.9 }).addTo(map);

  if (data.observer) {
    L.marker([data.observer.latitude, data.observer.longitude], {
      icon: L.divIcon({ className: "observer-dot", iconSize: [12, 12] }),
      title: "You",
    })
      .bindTooltip("You (" + data.observer.source.replace("_", " ") + ")")
      .addTo(map);
  }

  // --- the ISS now ---------------------------------------------------------------------------

  // Ground radius of the area that sees the ISS above the horizon.
  function footprintRadiusM(altitudeKm) {
    const h = altitudeKm > 0 ? altitudeKm : DEFAULT_ALTITUDE_KM;
    return EARTH_RADIUS_KM * Math.acos(EARTH_RADIUS_KM / (EARTH_RADIUS_KM + h)) * 1000;
  }

  function showPosition(p) {
    if (state.position && new Date(p.time) <= new Date(state.position.time)) return;
    state.position = p;
    const ll = [p.latitude, p.longitude];
    if (!issMarker) {
      issMarker = L.marker(ll, { icon: issIcon, title: "ISS", zIndexOffset: 1000 }).addTo(map);
      footprint = L.circle(ll, { radius: footprintRadiusM(p.altitude_km), color: "#1f6feb", weight: 1, fillOpacity: 0.08, interactive: false }).addTo(map);
    } else {
      issMarker.setLatLng(ll);
      footprint.setLatLng(ll).setRadius(footprintRadiusM(p.altitude_km));
    }
    $("iss-position").textContent = outpost.formatLatLon(p.latitude, p.longitude);
    $("iss-altitude").textContent = p.altitude_km ? p.altitude_km.toFixed(0) + " km" : "—";
    $("iss-speed").textContent = p.velocity_kmh ? Math.round(p.velocity_kmh).toLocaleString() + " km/h" : "—";
    tick();
    followAhead(p);
  }

  fetch("/api/iss/latest")
    .then((r) => (r.ok ? r.json() : null))
    .then((p) => {
      if (p) {
        showPosition(p);
        map.setView([p.latitude, p.longitude], 2);
      }
    });

  // --- the ground track ----------------------------------------------------------------------

  const track = { from: null, to: null, live: true, points: [] };

  function pad(n) {
    return String(n).padStart(2, "0");
  }
  function toInput(d) {
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" + pad(d.getHours()) + ":" + pad(d.getMinutes());
  }
  function clock(d) {
    return d.toLocaleString([], { weekday: "short", hour: "2-digit", minute: "2-digit" });
  }

  function drawTrack() {
    state.trackSegments = outpost.splitAtAntimeridian(track.points);
    trackLine.setLatLngs(state.trackSegments);
  }

  function loadTrack(from, to, live) {
    Object.assign(track, { from: from, to: to, live: live });
    $("track-from").value = toInput(from);
    $("track-to").value = toInput(to);
    $("track-info").textContent = "Loading…";
    const q = "from=" + encodeURIComponent(from.toISOString()) + "&to=" + encodeURIComponent(to.toISOString()) + "&max_points=" + TRACK_MAX_POINTS;
    return fetch("/api/iss/track?" + q)
      .then((r) => r.json().then((body) => (r.ok ? body : Promise.reject(new Error(body.error || r.status)))))
      .then((t) => {
        track.points = t.points.map((p) => [p.latitude, p.longitude]);
        drawTrack();
        Object.assign(track, { raw: t.points, downsampled: t.points.length < t.total });
        fillTrackGaps(t.points, track.downsampled);
        const shown = t.points.length < t.total ? t.points.length + " of " + t.total : String(t.total);
        $("track-info").textContent = shown + " positions, " + clock(from) + " – " + (live ? "now" : clock(to));
        $("track-info").dataset.total = t.total;
      })
      .catch((e) => ($("track-info").textContent = "Track unavailable: " + e.message));
  }

  function lastMinutes(minutes) {
    const now = new Date();
    return loadTrack(new Date(now - minutes * 60000), now, true);
  }

  document.querySelectorAll("#track-form [data-minutes]").forEach((b) =>
    b.addEventListener("click", () => lastMinutes(Number(b.dataset.minutes))),
  );
  $("track-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const from = new Date($("track-from").value);
    const to = new Date($("track-to").value);
    if (isNaN(from) || isNaN(to) || from > to) {
      $("track-info").textContent = "Choose a start before the end.";
      return;
    }
    loadTrack(from, to, to >= Date.now() - 60000);
  });
  lastMinutes(90);

  // A live track follows the ISS: new positions are appended, and old ones leave the window.
  function extendTrack(p) {
    if (!track.live) return;
    const span = track.to - track.from;
    track.to = new Date();
    track.from = new Date(track.to - span);
    track.points.push([p.latitude, p.longitude]);
    fillLiveGap(p);
    if (track.points.length > TRACK_MAX_POINTS * 1.5) track.points.splice(0, track.points.length - TRACK_MAX_POINTS);
    drawTrack();
  }

  // --- the orbit ahead, and gaps filled (predicted, never observed) ----------------------------

  // From /api/iss/predicted (the newest TLE): one orbit ahead of the marker as a dashed line, and
  // the stretches of the stored track with no position for over GAP_MS (the API was down, the Pi
  // was off) as a dotted line of another colour, each labelled as predicted. Neither is a
  // position anyone saw, and neither is stored.
  const GAP_MS = 3 * 60000;
  const AHEAD_REFRESH_MS = 5 * 60000; // ask again once the marker is this far along
  const AHEAD_RETRY_MS = 60000; // after a refusal (no usable TLE), unless a new TLE arrives
  const MAX_FILLS = 12; // the most recent gaps of a track; older ones stay empty
  const MAX_FILL_MS = 2 * 86400000; // the endpoint's bound
  const FILL_POINTS = 1000;

  const orbit = (state.orbit = { ahead: null, aheadSegments: [], fills: [], note: "" });
  const aheadLine = L.polyline([], {
    color: "#ff7a00", weight: 2, opacity: 0.85, dashArray: "8 8", className: "orbit-ahead", interactive: false,
  }).addTo(map);
  const fillLayer = L.layerGroup().addTo(map);
  let aheadPending = false;
  let aheadRetryAt = 0;
  let fillGeneration = 0;
  let lastObserved = null; // time (ms) of the newest position in the track, for live gaps

  const legend = L.control({ position: "bottomleft" });
  legend.onAdd = function () {
    const box = L.DomUtil.create("div", "orbit-legend");
    [["observed", "observed track"], ["ahead", "orbit ahead (predicted)"], ["fill", "no positions stored: predicted"]].forEach(([kind, text]) => {
      const row = L.DomUtil.create("div", "row", box);
      L.DomUtil.create("span", "swatch " + kind, row);
      row.appendChild(document.createTextNode(text));
    });
    L.DomUtil.create("p", "orbit-note", box).hidden = true;
    return box;
  };
  legend.addTo(map);

  function setOrbitNote(text) {
    orbit.note = text;
    const el = document.querySelector(".orbit-legend .orbit-note");
    el.textContent = text;
    el.hidden = !text;
  }

  function predicted(from, to, stepS) {
    const q = "from=" + encodeURIComponent(from) + (to ? "&to=" + encodeURIComponent(to) : "") + "&step_s=" + stepS;
    return fetch("/api/iss/predicted?" + q).then((r) =>
      r.json().then((body) => (r.ok ? body : Promise.reject(Object.assign(new Error(body.error || "HTTP " + r.status), { body: body })))),
    );
  }

  function drawAhead() {
    const at = state.position ? Date.parse(state.position.time) : -Infinity;
    const ahead = orbit.ahead ? orbit.ahead.points.filter((p) => Date.parse(p.time) > at).map((p) => [p.latitude, p.longitude]) : [];
    // From the marker on, so that the line leaves from where the ISS is drawn.
    if (ahead.length && state.position) ahead.unshift([state.position.latitude, state.position.longitude]);
    orbit.aheadSegments = outpost.splitAtAntimeridian(ahead);
    aheadLine.setLatLngs(orbit.aheadSegments);
  }

  function loadAhead(from) {
    aheadPending = true;
    return predicted(from, null, 30)
      .then((r) => {
        orbit.ahead = r;
        setOrbitNote("");
      })
      .catch((e) => {
        orbit.ahead = null;
        aheadRetryAt = Date.now() + AHEAD_RETRY_MS;
        const b = e.body || {};
        setOrbitNote(
          b.tle_age_days !== undefined
            ? "No orbit ahead: the newest TLE is " + b.tle_age_days + " days old (" + new Date(b.tle_epoch).toLocaleDateString() +
                "); an orbit is predicted only within 14 days of one."
            : "No orbit ahead: " + e.message,
        );
      })
      .finally(() => {
        aheadPending = false;
        drawAhead();
      });
  }

  // Called with every new position of the marker.
  function followAhead(p) {
    if (aheadPending) return;
    const t = Date.parse(p.time);
    const stale = !orbit.ahead || t < Date.parse(orbit.ahead.from) || t - Date.parse(orbit.ahead.from) > AHEAD_REFRESH_MS;
    if (!stale) return drawAhead();
    if (orbit.ahead || Date.now() >= aheadRetryAt) loadAhead(p.time);
  }

  // A new TLE: predict again from it.
  function refreshOrbit() {
    aheadRetryAt = 0;
    if (state.position) loadAhead(state.position.time);
    fillTrackGaps(track.raw || [], track.downsampled);
  }

  function fillGap(a, b, generation) {
    const span = Date.parse(b) - Date.parse(a);
    const fill = { from: a, to: b, points: 0, label: "", error: null };
    orbit.fills.push(fill);
    if (span > MAX_FILL_MS) {
      fill.error = "a gap of " + duration(span) + " is longer than the 2 days predicted at once";
      return Promise.resolve();
    }
    const stepS = Math.min(3600, Math.max(30, Math.ceil(span / 1000 / FILL_POINTS)));
    return predicted(a, b, stepS)
      .then((r) => {
        if (generation !== fillGeneration) return;
        fill.points = r.points.length;
        fill.label = "Predicted from the TLE of " + new Date(r.tle_epoch).toLocaleString() + ": no position stored " +
          clock(new Date(a)) + " – " + clock(new Date(b));
        const line = L.polyline(outpost.splitAtAntimeridian(r.points.map((p) => [p.latitude, p.longitude])), {
          color: "#0096a6", weight: 3, opacity: 0.9, dashArray: "1 6", lineCap: "round", className: "gap-fill",
        }).bindTooltip(fill.label, { sticky: true });
        fillLayer.addLayer(line);
        fill.tooltip = line.getTooltip().getContent();
      })
      .catch((e) => (fill.error = e.message));
  }

  function noteUnfilled() {
    const failed = orbit.fills.filter((f) => f.error);
    if (failed.length && !orbit.note) setOrbitNote(failed.length + " gap(s) in the track not filled: " + failed[0].error);
  }

  // Called with the points of a newly loaded track (times included). A downsampled track's points
  // are evenly spaced by design: only a jump well beyond that spacing is a gap.
  function fillTrackGaps(points, downsampled) {
    const generation = ++fillGeneration;
    fillLayer.clearLayers();
    orbit.fills = [];
    const times = points.map((p) => Date.parse(p.time));
    lastObserved = times.length ? times[times.length - 1] : null;
    let threshold = GAP_MS;
    if (downsampled && times.length > 1) threshold = Math.max(GAP_MS, (2 * (times[times.length - 1] - times[0])) / (times.length - 1));
    const gaps = [];
    for (let i = 1; i < times.length; i++) if (times[i] - times[i - 1] > threshold) gaps.push(i);
    Promise.all(gaps.slice(-MAX_FILLS).map((i) => fillGap(points[i - 1].time, points[i].time, generation))).then(() => {
      if (generation === fillGeneration) noteUnfilled();
    });
  }

  // Called with each live position appended to the track: the appliance may have missed some.
  function fillLiveGap(p) {
    const t = Date.parse(p.time);
    if (lastObserved !== null && t - lastObserved > GAP_MS) {
      fillGap(new Date(lastObserved).toISOString(), p.time, fillGeneration).then(noteUnfilled);
    }
    lastObserved = Math.max(lastObserved || t, t);
  }

  // --- live events ---------------------------------------------------------------------------

  function setLive(on) {
    const el = $("live");
    el.className = on ? "live-on" : "live-off";
    el.textContent = on ? "live" : "reconnecting";
  }
  const events = new EventSource("/api/events");
  events.onopen = () => setLive(true);
  events.onerror = () => setLive(false);
  events.onmessage = (e) => {
    const m = JSON.parse(e.data);
    state.events++;
    if (m.kind === "iss.position") {
      showPosition(m);
      extendTrack(m);
    } else if (m.kind === "iss.tle") {
      loadPasses(); // better elements, better predictions
      refreshOrbit();
    }
  };

  // --- passes --------------------------------------------------------------------------------

  function duration(ms) {
    const s = Math.max(0, Math.round(ms / 1000));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + pad(s % 60) + " s";
  }

  function loadPasses() {
    if (!data.observer) return;
    const all = $("passes-all").checked ? "&all=true" : "";
    fetch("/api/passes?hours=72&path=true" + all)
      .then((r) => r.json().then((body) => (r.ok ? body : Promise.reject(Object.assign(new Error(body.error || r.status), { body: body })))))
      .then((passes) => {
        state.passes = passes;
        state.unusableTle = null;
        renderPasses();
      })
      .catch((e) => {
        state.passes = [];
        $("pass-list").innerHTML = "";
        $("next-pass").textContent = showUnusableTle(e.body) ? "" : e.message;
      });
  }

  // The appliance refuses to predict from its newest TLE (too old, or the clock before its
  // epoch; the 503 of /api/passes): said where the passes are listed, with the TLE's epoch and
  // age, instead of an empty list. Returns whether it was that.
  function showUnusableTle(body) {
    state.unusableTle = body && body.tle_epoch ? body : null;
    if (!state.unusableTle) return false;
    const epoch = new Date(body.tle_epoch).toLocaleString([], { dateStyle: "medium", timeStyle: "short" });
    const age = Math.abs(body.tle_age_days).toFixed(1);
    const li = document.createElement("li");
    li.id = "unusable-tle";
    li.className = "error";
    li.textContent = body.tle_age_days >= 0
      ? "No passes: the newest TLE is too old (epoch " + epoch + ", " + age + " days old)."
      : "No passes: the clock is " + age + " days before the newest TLE's epoch (" + epoch + "); the clock is wrong.";
    const why = document.createElement("small");
    why.className = "muted";
    why.textContent = body.error;
    li.append(document.createElement("br"), why);
    $("pass-list").appendChild(li);
    return true;
  }

  function renderPasses() {
    const list = $("pass-list");
    list.innerHTML = "";
    if (!state.passes.length) {
      list.innerHTML = '<li class="muted">No passes in the next 72 hours.</li>';
    }
    state.passes.forEach((p, i) => {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.setAttribute("aria-pressed", String(state.selectedPass === i));
      const rise = new Date(p.rise.time);
      const visible = p.visible && p.visible_from
        ? "visible " + new Date(p.visible_from).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + "–" +
          new Date(p.visible_to).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
        : "not visible";
      b.innerHTML =
        '<span class="when"></span><span class="badge' + (p.visible ? " visible" : "") + '">' + (p.visible ? "visible" : "pass") + "</span>" +
        '<span class="how"></span>';
      b.querySelector(".when").textContent =
        rise.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short" }) + ", " +
        rise.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      b.querySelector(".how").textContent =
        "up to " + p.culmination.elevation_deg.toFixed(0) + "°, " + outpost.compass(p.rise.azimuth_deg) + " → " +
        outpost.compass(p.set.azimuth_deg) + ", " + visible + passBrightness(p);
      b.addEventListener("click", () => selectPass(i));
      li.appendChild(b);
      list.appendChild(li);
    });
    tick();
  }

  // ", mag -2.5 (bright)" for a visible pass: its magnitude at the brightest moment (lower is
  // brighter), as the API gives it; nothing for a pass that is not visible (magnitude null).
  function passBrightness(p) {
    if (typeof p.magnitude !== "number") return "";
    const m = p.magnitude;
    const word = m <= -3 ? "very bright" : m <= -2 ? "bright" : m <= -1 ? "easy to see" : "faint";
    return ", mag " + m.toFixed(1) + " (" + word + ")";
  }

  function selectPass(i) {
    state.selectedPass = state.selectedPass === i ? null : i;
    renderPasses();
    const p = state.passes[state.selectedPass];
    if (!p) {
      passLine.setLatLngs([]);
      $("sky").hidden = true;
      return;
    }
    passLine.setLatLngs(outpost.splitAtAntimeridian(p.path.map((q) => [q.latitude, q.longitude])));
    const bounds = passLine.getBounds();
    if (data.observer) bounds.extend([data.observer.latitude, data.observer.longitude]);
    map.fitBounds(bounds, { padding: [30, 30], maxZoom: 5 });
    drawSky(p);
  }

  // The pass across the observer's sky: zenith in the middle, the horizon at the rim, north up.
  function drawSky(p) {
    const r = 90;
    const xy = (az, el) => {
      const d = (r * (90 - Math.max(0, el))) / 90;
      const a = (az * Math.PI) / 180;
      return [(d * Math.sin(a)).toFixed(1), (-d * Math.cos(a)).toFixed(1)];
    };
    const path = p.path.map((q) => xy(q.azimuth_deg, q.elevation_deg).join(",")).join(" ");
    const [sx, sy] = xy(p.rise.azimuth_deg, 0);
    const [ex, ey] = xy(p.set.azimuth_deg, 0);
    $("sky").innerHTML =
      '<svg viewBox="-100 -100 200 200" role="img" aria-label="The pass across the sky">' +
      '<circle class="horizon" r="' + r + '"/>' +
      [30, 60].map((e) => '<circle class="ring" r="' + (r * (90 - e)) / 90 + '"/>').join("") +
      '<text x="-3" y="-80">N</text><text x="82" y="3">E</text><text x="-3" y="88">S</text><text x="-90" y="3">W</text>' +
      '<polyline class="path" points="' + path + '"/>' +
      '<circle cx="' + sx + '" cy="' + sy + '" r="3" fill="#5fb3ff"/><circle cx="' + ex + '" cy="' + ey + '" r="3" fill="#ff7a00"/>' +
      "</svg>";
    $("sky").hidden = false;
  }

  $("passes-all").addEventListener("change", () => {
    state.selectedPass = null;
    passLine.setLatLngs([]);
    $("sky").hidden = true;
    loadPasses();
  });
  loadPasses();
  calendarLink();

  // The calendar subscription: webcal:// on this page's host, so a phone's calendar app
  // subscribes (and refreshes) instead of importing once. Basic auth goes in the app's account
  // settings or the URL (README).
  function calendarLink() {
    const link = $("calendar-subscribe");
    if (link) link.href = "webcal://" + location.host + "/api/passes.ics";
  }

  // --- once a second: the countdown and the age of the position ------------------------------

  function tick() {
    const now = Date.now();
    if (state.position) {
      const t = new Date(state.position.time);
      $("iss-time").textContent = t.toLocaleTimeString() + " (" + duration(now - t) + " ago)";
    }
    if (!data.observer || !state.passes) return;
    const next = state.passes.find((p) => p.visible && new Date(p.visible_to) > now);
    const el = $("next-pass");
    if (!next) {
      el.textContent = state.passes.length ? "No visible pass in the next 72 hours." : "";
    } else if (new Date(next.visible_from) > now) {
      el.textContent = "Next visible pass in " + duration(new Date(next.visible_from) - now);
    } else {
      el.textContent = "Visible now, look " + outpost.compass(next.culmination.azimuth_deg) + "! Until " +
        new Date(next.visible_to).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    }
  }
  setInterval(tick, 1000);
  setInterval(() => night.setTime(new Date()), 60000);
})();
