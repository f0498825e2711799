#!/usr/bin/env python3
"""The peer of benches/passes.rs: the same week of ISS passes computed with Skyfield.

    passes_skyfield.py TLE_FILE LAT LON ALT_M FROM_ISO DAYS RUNS [MIN_ELEVATION SUN_LIMIT]

Offline: the timescale uses Skyfield's built-in leap-second table and the DE421 ephemeris comes
from the skyfield-data package (nothing is downloaded). The work timed is what `predict` does:
rise / culmination / set above MIN_ELEVATION (find_events), then for each pass whether and when
the ISS is sunlit while the sun is below SUN_LIMIT at the observer, on a one-second grid between
rise and set (the method of the reference passes in tests/fixtures/passes: "grid"), and again with
the visibility edges found the way Outpost finds them: both conditions sampled every 10 s and each
change refined by root finding (find_discrete: "refined"); "none" times find_events alone. Both
"grid" and "refined" also give each visible pass its magnitude at the brightest moment, with
Outpost's model (standard magnitude -1.3 at 1000 km and 90 deg phase, + 5 log10(range / 1000 km),
Lambertian sphere phase law) in numpy on a one-second grid over the visible window, with DE421's
geometric sun; "mag_s" is the part of each run spent on it. Prints one JSON object:
{"setup_s", "grid": {"times_s", "mag_s", "passes"}, "refined": {...}, "none": {"times_s"}},
passes in the shape of `outpost passes --json`.
"""
import json
import sys
import time
import warnings

t_setup = time.perf_counter()
import numpy as np  # noqa: E402
from skyfield.api import EarthSatellite, wgs84  # noqa: E402
from skyfield.searchlib import find_discrete  # noqa: E402
from skyfield.iokit import Loader  # noqa: E402
from skyfield_data import get_skyfield_data_path  # noqa: E402

# skyfield-data warns that its IERS table has expired; the built-in timescale does not use it.
warnings.filterwarnings("ignore", category=RuntimeWarning)


def iso(t):
    # Rounded to the nearest second, as Outpost reports times.
    return t.utc_strftime("%Y-%m-%dT%H:%M:%SZ")


def point(t, topos, sat):
    alt, az, _ = (sat - topos).at(t).altaz()
    return {"time": iso(t), "azimuth_deg": round(az.degrees, 3), "elevation_deg": round(alt.degrees, 3)}


STANDARD_MAGNITUDE = -1.3
MAG_TIME = [0.0]  # seconds spent on magnitudes in the current run


def brightest(ts, eph, sat, topos, start, end):
    """The brightest magnitude between start and end (Times), sampled every second, to 0.1;
    None if the ISS is in the shadow throughout."""
    c = time.perf_counter()
    n = max(int(round((end.tt - start.tt) * 86400.0)), 0) + 1
    grid = ts.tt_jd(np.linspace(start.tt, end.tt, n))
    satellite = sat.at(grid).position.km
    observer = topos.at(grid).position.km
    sun = (eph["sun"] - eph["earth"]).at(grid).position.km
    to_sun, to_observer = sun - satellite, observer - satellite
    rng = np.linalg.norm(to_observer, axis=0)
    cos_p = np.sum(to_sun * to_observer, axis=0) / (np.linalg.norm(to_sun, axis=0) * rng)
    phase = np.arccos(np.clip(cos_p, -1.0, 1.0))
    lit = np.sin(phase) + (np.pi - phase) * np.cos(phase)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = STANDARD_MAGNITUDE + 5.0 * np.log10(rng / 1000.0) - 2.5 * np.log10(lit)
    mag = np.where(sat.at(grid).is_sunlit(eph) & (lit > 0), mag, np.inf)
    best = float(mag.min())
    MAG_TIME[0] += time.perf_counter() - c
    return round(best, 1) if np.isfinite(best) else None


def refined_window(ts, eph, sat, topos, rise, set_, sun_limit):
    """The visible window found like Outpost finds it: both conditions sampled every 10 s between
    rise and set, and each change refined by root finding (find_discrete), then rounded to the
    second. Returns (from, to) or None."""
    earth, sun = eph["earth"], eph["sun"]
    observer = earth + topos

    def sunlit(t):
        return sat.at(t).is_sunlit(eph)

    def dark(t):
        return observer.at(t).observe(sun).apparent().altaz()[0].degrees < sun_limit

    sunlit.step_days = dark.step_days = 10.0 / 86400.0
    edges = [rise.tt]
    for f in (sunlit, dark):
        times, _ = find_discrete(rise, set_, f)
        edges.extend(times.tt)
    edges = sorted(set(edges))
    # Each piece between edges is uniformly visible or not: test its midpoint.
    bounds = edges + [set_.tt]
    mids = ts.tt_jd([(a + b) / 2 for a, b in zip(bounds[:-1], bounds[1:])])
    vis = sunlit(mids) & dark(mids)
    pieces = [(a, b) for (a, b), v in zip(zip(bounds[:-1], bounds[1:]), vis) if v]
    if not pieces:
        return None
    return ts.tt_jd(pieces[0][0]), ts.tt_jd(pieces[-1][1])


def passes(ts, eph, sat, topos, t0, t1, min_el, sun_limit, visibility="grid"):
    times, events = sat.find_events(topos, t0, t1, altitude_degrees=min_el)
    if visibility == "none":
        return times, events
    earth, sun = eph["earth"], eph["sun"]
    out = []
    cur = {}
    for t, e in zip(times, events):
        if e == 0:
            cur = {"rise": t}
        elif e == 1 and "rise" in cur:
            cur["culmination"] = t
        elif e == 2 and "culmination" in cur:
            cur["set"] = t
            rise, set_ = cur["rise"], cur["set"]
            if visibility == "refined":
                window = refined_window(ts, eph, sat, topos, rise, set_, sun_limit)
                p = {
                    "rise": point(rise, topos, sat),
                    "culmination": point(cur["culmination"], topos, sat),
                    "set": point(set_, topos, sat),
                    "visible": window is not None,
                }
                if window:
                    p["visible_from"], p["visible_to"] = iso(window[0]), iso(window[1])
                    p["magnitude"] = brightest(ts, eph, sat, topos, window[0], window[1])
                out.append(p)
                cur = {}
                continue
            # One-second grid from rise to set.
            n = int((set_.tt - rise.tt) * 86400.0) + 1
            grid = ts.tt_jd(rise.tt + np.arange(n) / 86400.0)
            sunlit = sat.at(grid).is_sunlit(eph)
            sun_alt = (earth + topos).at(grid).observe(sun).apparent().altaz()[0].degrees
            visible = sunlit & (sun_alt < sun_limit)
            p = {
                "rise": point(rise, topos, sat),
                "culmination": point(cur["culmination"], topos, sat),
                "set": point(set_, topos, sat),
                "visible": bool(visible.any()),
            }
            if visible.any():
                idx = np.nonzero(visible)[0]
                p["visible_from"] = iso(grid[int(idx[0])])
                p["visible_to"] = iso(grid[int(idx[-1])])
                p["magnitude"] = brightest(ts, eph, sat, topos, grid[int(idx[0])], grid[int(idx[-1])])
            out.append(p)
            cur = {}
    return out


def main():
    tle_file, lat, lon, alt, start, days, runs = sys.argv[1:8]
    min_el = float(sys.argv[8]) if len(sys.argv) > 8 else 10.0
    sun_limit = float(sys.argv[9]) if len(sys.argv) > 9 else -6.0
    load = Loader(get_skyfield_data_path(), expire=False, verbose=False)
    ts = load.timescale(builtin=True)
    eph = load("de421.bsp")
    lines = [l.rstrip() for l in open(tle_file) if l.strip()]
    sat = EarthSatellite(lines[-2], lines[-1], lines[0] if len(lines) == 3 else None, ts)
    topos = wgs84.latlon(float(lat), float(lon), elevation_m=float(alt))
    y, mo, d = (int(x) for x in start[:10].split("-"))
    h, mi, s = (int(x) for x in start[11:19].split(":"))
    t0 = ts.utc(y, mo, d, h, mi, s)
    t1 = ts.utc(y, mo, d + int(days), h, mi, s)
    setup = time.perf_counter() - t_setup
    out = {"setup_s": setup}
    for mode in ("grid", "refined", "none"):
        result, times, mag = None, [], []
        for _ in range(int(runs)):
            MAG_TIME[0] = 0.0
            c = time.perf_counter()
            result = passes(ts, eph, sat, topos, t0, t1, min_el, sun_limit, visibility=mode)
            times.append(time.perf_counter() - c)
            mag.append(MAG_TIME[0])
        out[mode] = {"times_s": times, "mag_s": mag}
        if mode != "none":
            out[mode]["passes"] = result
    print(json.dumps(out))


if __name__ == "__main__":
    main()
