#!/usr/bin/env python3
"""Parses an iCalendar file with an independent parser (the `icalendar` package) and prints it as
JSON: {"calendar": {PROPERTY: value as written, unfolded}, "events": [{"uid", "dtstart", "dtend", "dtstamp", "summary",
"description", "transp"}]}, times as RFC 3339 UTC ("...Z"), dtend null when absent.

    ics_read.py FILE

Exits 3 (and says why on stderr) when icalendar is not installed, so the caller can skip.
"""
import json
import sys

try:
    import icalendar
except ImportError as e:
    print(f"icalendar is not installed: {e}", file=sys.stderr)
    sys.exit(3)


def utc(prop):
    if prop is None:
        return None
    t = prop.dt
    if t.utcoffset() is None or t.utcoffset().total_seconds() != 0:
        raise SystemExit(f"not a UTC time: {t!r}")
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def main():
    with open(sys.argv[1], "rb") as f:
        cal = icalendar.Calendar.from_ical(f.read())
    if cal.name != "VCALENDAR":
        raise SystemExit(f"not a calendar: {cal.name}")
    # The parser's own complaints (it is lenient and records what it could not read).
    errors = [(c.name, e) for c in cal.walk() for e in getattr(c, "errors", [])]
    if errors:
        raise SystemExit(f"parse errors: {errors}")
    out = {
        "calendar": {
            k: v.to_ical().decode() for k, v in cal.property_items(recursive=False) if k not in ("BEGIN", "END")
        },
        "events": [
            {
                "uid": str(ev["UID"]),
                "dtstart": utc(ev.get("DTSTART")),
                "dtend": utc(ev.get("DTEND")),
                "dtstamp": utc(ev.get("DTSTAMP")),
                "summary": str(ev["SUMMARY"]),
                "description": str(ev["DESCRIPTION"]),
                "transp": str(ev.get("TRANSP", "")),
            }
            for ev in cal.walk("VEVENT")
        ],
    }
    print(json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
