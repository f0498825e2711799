// The map pages in headless Chromium (Debian's chromium, driven by playwright-core), with every
// request outside loopback blocked, as on a home network without internet. Started by
// tests/it/browser.rs against a running appliance; exits non-zero on the first failed check.
//
//   OUTPOST_URL=http://127.0.0.1:PORT OUTPOST_ARTIFACTS=dir node tests/browser/map.mjs
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const base = process.env.OUTPOST_URL;
// An appliance whose newest TLE is years old (optional).
const staleBase = process.env.OUTPOST_STALE_URL;
const artifacts = process.env.OUTPOST_ARTIFACTS;
const executablePath = process.env.OUTPOST_CHROMIUM || "/usr/bin/chromium";
if (!base || !artifacts) throw new Error("set OUTPOST_URL and OUTPOST_ARTIFACTS");
mkdirSync(artifacts, { recursive: true });

function check(ok, what) {
  if (!ok) throw new Error("check failed: " + what);
  console.log("ok - " + what);
}

const browser = await chromium.launch({
  executablePath,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
});
const blocked = [];
const requests = [];
const errors = [];
// Content-Security-Policy violations, as the page reports them (securitypolicyviolation events)
// and as chromium logs them ("Refused to ..."), with the page they happened on.
const violations = [];
const refusals = [];

// `origin`: which appliance; `setup(context)`, if given, runs before the page loads (e.g. to
// answer one path itself).
async function open(viewport, path, origin = base, setup = undefined) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  // Only loopback answers: tiles and anything else on the internet are refused.
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === "data:" || url.hostname === "127.0.0.1" || url.hostname === "localhost") {
      requests.push(url.pathname);
      return route.continue();
    }
    blocked.push(url.href);
    return route.abort("internetdisconnected");
  });
  await context.exposeBinding("reportCspViolation", ({ page }, v) => violations.push(`${new URL(page.url()).pathname}: ${v}`));
  await context.addInitScript(() =>
    document.addEventListener("securitypolicyviolation", (e) =>
      window.reportCspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`),
    ),
  );
  if (setup) await setup(context);
  const page = await context.newPage();
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => {
    if (/Refused to|Content Security Policy/.test(m.text())) refusals.push(`${path}: ${m.text()}`);
    else if (m.type() === "error" && !/ERR_INTERNET_DISCONNECTED|Failed to load resource/.test(m.text())) errors.push(m.text());
  });
  await page.goto(origin + path);
  return page;
}

// Waits (at most 10 s) until `cond()` holds.
async function until(cond, what) {
  const deadline = Date.now() + 10000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 50));
  }
}

try {
  // --- the map, on a phone -------------------------------------------------------------------
  const page = await open({ width: 390, height: 844 }, "/");
  await page.waitForSelector("#map[data-basemap=ready]", { timeout: 20000 });
  const painted = await page.evaluate(() => {
    const canvas = document.querySelector(".leaflet-basemap-pane canvas");
    const ctx = canvas.getContext("2d");
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    let filled = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) filled++;
    return { filled: filled / (canvas.width * canvas.height), features: outpost.basemapFeatures };
  });
  check(painted.features > 200, `the bundled basemap has ${painted.features} countries`);
  check(painted.filled > 0.05, `the basemap paints ${(painted.filled * 100).toFixed(0)}% of its canvas`);
  check(blocked.some((u) => u.includes("tile.openstreetmap.org")), "the online tiles were tried and blocked");

  await page.waitForSelector(".iss-icon", { timeout: 20000 });
  check(true, "the ISS marker appears");
  const first = await page.evaluate(() => outpost.state.position);
  const firstBox = await page.locator(".iss-icon").boundingBox();
  // The appliance collects a new position every second; it must arrive over /api/events.
  await page.waitForFunction((t) => outpost.state.position && outpost.state.position.time !== t, first.time, { timeout: 20000 });
  const moved = await page.evaluate(() => outpost.state.position);
  check(moved.longitude !== first.longitude, `the position moved from ${first.longitude} to ${moved.longitude}`);
  // The marker follows on the next frames (under load, later than the state): wait for it.
  const markerMoved = await page
    .waitForFunction((box) => {
      const now = document.querySelector(".iss-icon").getBoundingClientRect();
      return Math.abs(now.x - box.x) + Math.abs(now.y - box.y) > 0.5;
    }, firstBox, { timeout: 10000 })
    .then(() => true, () => false);
  check(markerMoved, "the marker moved on screen");
  check(requests.filter((p) => p === "/api/iss/latest").length === 1, "the page did not poll for positions");
  check(await page.locator("#live.live-on").count() === 1, "the live badge says live");
  await page.screenshot({ path: join(artifacts, "map-phone.png"), fullPage: true });

  // --- the track and the date filter --------------------------------------------------------
  await page.waitForFunction(() => Number(document.querySelector("#track-info").dataset.total) > 3, null, { timeout: 20000 });
  const before = await page.evaluate(() => ({
    total: Number(document.querySelector("#track-info").dataset.total),
    segments: outpost.state.trackSegments,
  }));
  const jumps = before.segments.flatMap((s) => s.slice(1).map((p, i) => Math.abs(p[1] - s[i][1])));
  check(before.segments.length >= 2, `the track is split at the antimeridian (${before.segments.length} segments)`);
  check(jumps.every((d) => d <= 180), "no track segment crosses the whole map");

  // --- the orbit ahead and the gap filled, both predicted from the stored TLE ----------------
  // The line ahead leaves from the marker (wait: a new position may be on its way in).
  await page.waitForFunction(() => {
    const o = outpost.state.orbit;
    const pos = outpost.state.position;
    const first = o.aheadSegments.length && o.aheadSegments[0][0];
    return first && first[0] === pos.latitude && first[1] === pos.longitude;
  }, null, { timeout: 20000 });
  const ahead = await page.evaluate(() => {
    const o = outpost.state.orbit;
    const path = document.querySelector("path.orbit-ahead");
    return {
      points: o.aheadSegments.reduce((n, s) => n + s.length, 0),
      minutes: (Date.parse(o.ahead.to) - Date.parse(o.ahead.from)) / 60000,
      dash: path && path.getAttribute("stroke-dasharray"),
      epoch: o.ahead.tle_epoch,
      note: o.note,
    };
  });
  check(ahead.points > 150 && ahead.minutes > 90 && ahead.minutes < 95, `one orbit ahead of the marker (${ahead.points} points, ${ahead.minutes.toFixed(1)} min, TLE of ${ahead.epoch})`);
  check(ahead.dash === "8 8", `the orbit ahead is dashed (${ahead.dash})`);
  check(ahead.note === "", "no note while the TLE is usable");
  // The stored track has a 10-minute hole (tests/it/browser.rs): filled with the prediction.
  await page.waitForFunction(() => outpost.state.orbit.fills.some((f) => f.points > 0), null, { timeout: 20000 });
  const fill = await page.evaluate(() => {
    const f = outpost.state.orbit.fills.find((f) => f.points > 0);
    const path = document.querySelector("path.gap-fill");
    return Object.assign({}, f, {
      minutes: (Date.parse(f.to) - Date.parse(f.from)) / 60000,
      dash: path && path.getAttribute("stroke-dasharray"),
      stroke: path && path.getAttribute("stroke"),
      legend: document.querySelector(".orbit-legend").textContent,
    });
  });
  check(fill.minutes > 9 && fill.minutes < 12, `the ${fill.minutes.toFixed(1)}-minute gap in the stored track is found`);
  check(fill.points >= 20, `and filled with ${fill.points} predicted positions`);
  check(fill.dash === "1 6" && fill.stroke !== "#ff7a00", `drawn dotted in another colour (${fill.dash}, ${fill.stroke})`);
  check(/^Predicted from the TLE/.test(fill.tooltip), "its tooltip says it is predicted: " + fill.tooltip);
  check(fill.legend.includes("orbit ahead (predicted)") && fill.legend.includes("no positions stored: predicted"), "the legend marks both as predicted: " + fill.legend);

  // The first two minutes of positions only: the filter must ask the server for fewer.
  const range = await page.evaluate(async () => {
    const t = await (await fetch("/api/iss/track?max_points=1")).json();
    return t.points[0].time;
  });
  const from = new Date(range);
  from.setSeconds(0, 0);
  const to = new Date(from.getTime() + 2 * 60000);
  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  await page.fill("#track-from", local(from));
  await page.fill("#track-to", local(to));
  const expected = await page.evaluate(async ([a, b]) => {
    const t = await (await fetch(`/api/iss/track?from=${encodeURIComponent(a)}&to=${encodeURIComponent(b)}&max_points=1`)).json();
    return t.total;
  }, [new Date(local(from)).toISOString(), new Date(local(to)).toISOString()]);
  await page.click("#track-form button[type=submit]");
  await page.waitForFunction((n) => document.querySelector("#track-info").dataset.total === String(n), expected, { timeout: 10000 });
  const after = await page.evaluate(() => outpost.state.trackSegments.reduce((n, s) => n + s.length, 0));
  check(expected < before.total, `the date filter narrowed the track from ${before.total} to ${expected} positions`);
  check(after >= expected && after < before.total + before.segments.length * 2, "the drawn track follows the filter");

  // --- passes --------------------------------------------------------------------------------
  await page.check("#passes-all");
  await page.waitForSelector("#pass-list li button", { timeout: 20000 });
  // The longest pass of the list: the first may be a grazing one of a few minutes (which passes
  // come first depends on the time of day the test runs).
  const longest = await page.evaluate(() => {
    const length = (p) => new Date(p.set.time) - new Date(p.rise.time);
    const passes = outpost.state.passes;
    return passes.reduce((best, p, i) => (length(p) > length(passes[best]) ? i : best), 0);
  });
  await page.click(`#pass-list li:nth-child(${longest + 1}) button`);
  await page.waitForSelector("#sky:not([hidden]) svg polyline", { timeout: 10000 });
  const brightness = await page.evaluate(() => {
    const items = [...document.querySelectorAll("#pass-list li button .how")].map((e) => e.textContent);
    return outpost.state.passes.every((p, i) =>
      p.visible ? items[i].includes(", mag " + p.magnitude.toFixed(1) + " (") : !items[i].includes("mag "));
  });
  check(brightness, "each visible pass in the list says its magnitude, the others none");
  const passPoints = await page.evaluate(() => outpost.state.passes[outpost.state.selectedPass].path.length);
  check(passPoints > 10, `choosing a pass draws its path (${passPoints} points) and its sky plot`);
  await page.screenshot({ path: join(artifacts, "map-phone-pass.png"), fullPage: true });
  const webcal = await page.getAttribute("#calendar-subscribe", "href");
  check(webcal === `webcal://${new URL(base).host}/api/passes.ics`, `"Add to calendar" subscribes to ${webcal}`);

  // --- no usable TLE: nothing ahead, and the map says why ------------------------------------
  const stale = await open({ width: 390, height: 844 }, "/", base, (context) =>
    context.route((url) => url.pathname === "/api/iss/predicted", (route) =>
      route.fulfill({
        status: 503,
        contentType: "application/json",
        // The appliance's answer for a TLE 1,170 days old (tests/it/predicted.rs checks it).
        body: JSON.stringify({ error: "no usable TLE: ...", tle_epoch: "2023-09-18T10:40:25.371840Z", tle_age_days: 1170 }),
      }),
    ),
  );
  await stale.waitForSelector(".iss-icon", { timeout: 20000 });
  await stale.waitForFunction(() => outpost.state.orbit.note !== "", null, { timeout: 20000 });
  const staleView = await stale.evaluate(() => ({
    note: document.querySelector(".orbit-legend .orbit-note").textContent,
    shown: !document.querySelector(".orbit-legend .orbit-note").hidden,
    ahead: outpost.state.orbit.aheadSegments.length,
  }));
  check(staleView.ahead === 0, "with no usable TLE nothing is drawn ahead");
  check(staleView.shown && /1170 days old/.test(staleView.note), "and the map says why: " + staleView.note);
  await stale.screenshot({ path: join(artifacts, "map-phone-stale-tle.png"), fullPage: true });

  // --- desktop -------------------------------------------------------------------------------
  const wide = await open({ width: 1280, height: 800 }, "/");
  await wide.waitForSelector("#map[data-basemap=ready]");
  await wide.waitForSelector(".iss-icon");
  await wide.waitForFunction(() => outpost.state.trackSegments.length > 0);
  await wide.screenshot({ path: join(artifacts, "map-desktop.png") });

  // --- a TLE too old to predict from: said where the passes are listed ------------------------
  if (staleBase) {
    const stale = await open({ width: 390, height: 844 }, "/", staleBase);
    await stale.waitForSelector("#pass-list #unusable-tle", { timeout: 20000 });
    const said = await stale.evaluate(() => ({
      text: document.querySelector("#unusable-tle").textContent,
      items: document.querySelectorAll("#pass-list li").length,
      tle: outpost.state.unusableTle,
    }));
    check(said.tle.tle_age_days > 1000 && /^2023-09-18T10:40/.test(said.tle.tle_epoch), `the page has the 503's TLE (${said.tle.tle_epoch}, ${said.tle.tle_age_days} days)`);
    check(said.text.includes("too old") && said.text.includes(said.tle.tle_age_days.toFixed(1) + " days old"), "the pass list says the TLE is too old, with its age: " + said.text);
    check(said.text.includes("2023"), "and its epoch: " + said.text);
    check(said.items === 1 && !said.text.includes("No passes in the next"), "instead of an empty list");
    await stale.screenshot({ path: join(artifacts, "map-stale-tle.png"), fullPage: true });
  }

  // --- /avalanche and /status ----------------------------------------------------------------
  const aval = await open({ width: 1280, height: 900 }, "/avalanche?date=2023-03-03");
  await aval.waitForSelector("#region-map[data-basemap=ready]");
  check(await aval.evaluate(() => outpost.state.regions) === 1, "the stored region is on the map");
  check(await aval.locator("#region-detail .danger-3").count() >= 1, "the region shows danger 3 in its colour");
  check(await aval.locator(".season-chart rect").count() === 5, "the season chart has the five stored days");
  check((await aval.textContent("body")).includes("Varsler fra Snøskredvarslingen i Norge"), "NVE's attribution");
  // The weather beside the danger: Trollheimen's row and the detail panel, on screen.
  const row = aval.locator(".region-table tr[aria-current]");
  check(await row.locator("td.weather.snow").isVisible(), "the selected region's new snow is visible");
  check(/\d+\.\d km\/h/.test(await row.locator("td.weather.wind").textContent()), "its strongest wind in km/h");
  check(/°C/.test(await row.locator("td.weather.temp").textContent()), "its temperature range");
  check(await aval.locator(".region-table tr").count() === 3, "a header and two regions (one with weather only)");
  check(await aval.locator("#region-weather").isVisible(), "the detail panel shows the weather");
  const openMeteo = aval.locator('a[href="https://open-meteo.com/"]').first();
  check(await openMeteo.isVisible(), "Open-Meteo's attribution is visible");
  await aval.screenshot({ path: join(artifacts, "avalanche.png"), fullPage: true });
  const avalPhone = await open({ width: 390, height: 844 }, "/avalanche?date=2023-03-03&region=3022");
  await avalPhone.waitForSelector("#region-map[data-basemap=ready]");
  const overflow = await avalPhone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the phone page does not scroll sideways (the weather table scrolls in its box; ${overflow}px)`);
  await avalPhone.screenshot({ path: join(artifacts, "avalanche-phone.png"), fullPage: true });

  const status = await open({ width: 1280, height: 900 }, "/status");
  check((await status.textContent("h1")) === "Status", "/status renders");
  check(await status.locator("#collectors .card").count() >= 3, "every collector has a card");
  await status.screenshot({ path: join(artifacts, "status.png"), fullPage: true });

  check(errors.length === 0, "no script errors: " + errors.join("; "));
  check(
    violations.length === 0 && refusals.length === 0,
    "no Content-Security-Policy violation on /, /avalanche and /status: " + [...violations, ...refusals].join("; "),
  );

  // --- the CSP check itself: an injected inline script and a foreign image must be reported --
  const probe = await open({ width: 800, height: 600 }, "/status");
  await probe.evaluate(() => {
    const script = document.createElement("script");
    script.textContent = "window.inlineScriptRan = true;";
    document.head.appendChild(script);
    const img = document.createElement("img");
    img.src = "https://evil.example/pixel.png";
    document.body.appendChild(img);
  });
  await until(() => violations.length >= 2 && refusals.length >= 2, "the injected content to be reported");
  check(await probe.evaluate(() => window.inlineScriptRan === undefined), "the injected inline script did not run");
  check(violations.some((v) => v.startsWith("/status: script-src-elem blocked inline")), "an inline script is reported: " + violations.join("; "));
  check(violations.some((v) => v.includes("img-src blocked https://evil.example/pixel.png")), "a foreign image is reported: " + violations.join("; "));
  check(!blocked.includes("https://evil.example/pixel.png"), "the browser never asked for the foreign image");
  console.log("screenshots in " + artifacts);
} finally {
  await browser.close();
}
