"""Skyfield's ground track for a TLE, the independent reference for GET /api/iss/predicted.

    skyfield_track.py TLE_FILE < times.json > points.json

times.json is a JSON list of RFC 3339 UTC times; the answer is {"skyfield": version, "points": [...]}, per time
{"time", "latitude", "longitude", "altitude_km"}: the point under the satellite on WGS84 and its
height above the ellipsoid (`wgs84.geographic_position_of`). Offline: the built-in timescale needs
no download (UT1 from Skyfield's bundled delta T; polar motion ignored, as Outpost does).
"""

import datetime
import json
import sys

from skyfield.api import EarthSatellite, load, wgs84


def main() -> None:
    lines = [line.rstrip() for line in open(sys.argv[1]) if line.strip()]
    name, line1, line2 = (lines[0].strip(), lines[1], lines[2]) if len(lines) == 3 else (None, lines[0], lines[1])
    ts = load.timescale(builtin=True)
    satellite = EarthSatellite(line1, line2, name, ts)
    stamps = json.load(sys.stdin)
    moments = [datetime.datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps]
    where = wgs84.geographic_position_of(satellite.at(ts.from_datetimes(moments)))
    points = [
        {"time": s, "latitude": float(lat), "longitude": float(lon), "altitude_km": float(h)}
        for s, lat, lon, h in zip(stamps, where.latitude.degrees, where.longitude.degrees, where.elevation.km)
    ]
    json.dump({"skyfield": __import__("skyfield").__version__, "points": points}, sys.stdout)


if __name__ == "__main__":
    main()
