"""The demo account's calendar: realistic events placed relative to today, written over CalDAV.

What a newcomer should see in the coming weeks (schedule time zone Europe/Berlin):

* a stand-up every Monday and Wednesday 09:30-09:45 Berlin time, with one instance moved
  (RECURRENCE-ID) and one cancelled (EXDATE); it runs on across the next DST change, keeping
  09:30 local while its UTC time shifts;
* a weekly call at 10:00 New York time, which moves in Berlin time in the weeks when only one
  side has changed its clocks;
* all-day events (a two-day offsite, a day off), a call in London time, a flight that starts in
  Berlin time and ends in New York time;
* an overnight maintenance window across the night of the next Europe/Berlin DST change
  (22:00 to 06:00 local: 7 hours in spring, 9 in autumn);
* a transparent reminder, which is not busy time and so never listed.

Every event has a fixed file name and UID, so writing them again replaces them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from urllib.parse import quote, urljoin
from zoneinfo import ZoneInfo

import httpx

BERLIN = ZoneInfo("Europe/Berlin")
CALENDAR_NAME = "work"
CALENDAR_DISPLAY_NAME = "Work"

# tzid -> (standard offset, daylight offset, names, first onsets in 1970 and rules), as
# the tz database has them today.
_VTIMEZONES = {
    "Europe/Berlin": (
        ("+0100", "CET", "19701025T030000", "BYMONTH=10;BYDAY=-1SU"),
        ("+0200", "CEST", "19700329T020000", "BYMONTH=3;BYDAY=-1SU"),
    ),
    "Europe/London": (
        ("+0000", "GMT", "19701025T020000", "BYMONTH=10;BYDAY=-1SU"),
        ("+0100", "BST", "19700329T010000", "BYMONTH=3;BYDAY=-1SU"),
    ),
    "America/New_York": (
        ("-0500", "EST", "19701101T020000", "BYMONTH=11;BYDAY=1SU"),
        ("-0400", "EDT", "19700308T020000", "BYMONTH=3;BYDAY=2SU"),
    ),
}


@dataclass(frozen=True)
class DemoEvent:
    filename: str
    ical: str


def next_dst_change(today: date, tz: ZoneInfo = BERLIN) -> date:
    """The first local day after ``today`` whose UTC offset differs from the day before's."""
    day = today
    for _ in range(400):
        following = day + timedelta(days=1)
        if _offset(following, tz) != _offset(day, tz):
            return following
        day = following
    raise ValueError(f"{tz.key} has no DST change within a year")


def _offset(day: date, tz: ZoneInfo) -> timedelta | None:
    return datetime.combine(day, time(12), tz).utcoffset()


def week_start(today: date) -> date:
    """Monday of ``today``'s week."""
    return today - timedelta(days=today.weekday())


def demo_events(today: date) -> list[DemoEvent]:
    """The demo calendar for the weeks around ``today`` (a date in Europe/Berlin)."""
    monday = week_start(today)
    dst = next_dst_change(today)
    standup_start = monday - timedelta(weeks=3)
    moved = monday + timedelta(weeks=1, days=2)  # Wednesday next week
    cancelled = monday + timedelta(weeks=2)  # Monday in two weeks
    berlin = "Europe/Berlin"
    standup = _resource(
        [
            _vevent(
                "calsync-demo-standup",
                "Team stand-up",
                [
                    _dt("DTSTART", standup_start, "0930", berlin),
                    _dt("DTEND", standup_start, "0945", berlin),
                    "RRULE:FREQ=WEEKLY;BYDAY=MO,WE",
                    _dt("EXDATE", cancelled, "0930", berlin),
                ],
            ),
            _vevent(
                "calsync-demo-standup",
                "Team stand-up (moved to 11:00)",
                [
                    _dt("RECURRENCE-ID", moved, "0930", berlin),
                    _dt("DTSTART", moved, "1100", berlin),
                    _dt("DTEND", moved, "1115", berlin),
                ],
            ),
        ],
        [berlin],
    )
    new_york = "America/New_York"
    ny_first = monday - timedelta(weeks=2) + timedelta(days=3)  # a Thursday
    ny_call = _resource(
        [
            _vevent(
                "calsync-demo-new-york",
                "Call with the New York office",
                [
                    _dt("DTSTART", ny_first, "1000", new_york),
                    _dt("DTEND", ny_first, "1100", new_york),
                    "RRULE:FREQ=WEEKLY",
                ],
            )
        ],
        [new_york],
    )
    offsite = monday + timedelta(weeks=1, days=3)  # Thursday next week
    day_off = cancelled + timedelta(days=4)  # Friday in two weeks
    london_day = monday + timedelta(days=1)
    flight_day = monday + timedelta(weeks=1, days=1)
    return [
        DemoEvent("standup.ics", standup),
        DemoEvent("new-york-call.ics", ny_call),
        DemoEvent(
            "offsite.ics",
            _resource(
                [_all_day("calsync-demo-offsite", "Team offsite", offsite, offsite + timedelta(2))]
            ),
        ),
        DemoEvent(
            "day-off.ics",
            _resource(
                [_all_day("calsync-demo-day-off", "Day off", day_off, day_off + timedelta(1))]
            ),
        ),
        DemoEvent(
            "london-call.ics",
            _resource(
                [
                    _vevent(
                        "calsync-demo-london",
                        "Customer call (London time)",
                        [
                            _dt("DTSTART", london_day, "1400", "Europe/London"),
                            _dt("DTEND", london_day, "1430", "Europe/London"),
                        ],
                    )
                ],
                ["Europe/London"],
            ),
        ),
        DemoEvent(
            "flight.ics",
            _resource(
                [
                    _vevent(
                        "calsync-demo-flight",
                        "Flight BER to JFK",
                        [
                            _dt("DTSTART", flight_day, "1000", berlin),
                            _dt("DTEND", flight_day, "1300", new_york),
                        ],
                    )
                ],
                [berlin, new_york],
            ),
        ),
        DemoEvent(
            "dst-maintenance.ics",
            _resource(
                [
                    _vevent(
                        "calsync-demo-dst-maintenance",
                        "Overnight maintenance (clocks change tonight)",
                        [
                            _dt("DTSTART", dst - timedelta(days=1), "2200", berlin),
                            _dt("DTEND", dst, "0600", berlin),
                        ],
                    )
                ],
                [berlin],
            ),
        ),
        DemoEvent(
            "reminder.ics",
            _resource(
                [
                    _vevent(
                        "calsync-demo-reminder",
                        "Reminder: submit timesheet (free time, not listed)",
                        [
                            _dt("DTSTART", monday + timedelta(days=4), "1600", berlin),
                            _dt("DTEND", monday + timedelta(days=4), "1615", berlin),
                            "TRANSP:TRANSPARENT",
                        ],
                    )
                ],
                [berlin],
            ),
        ),
    ]


def _dt(name: str, day: date, hhmm: str, tzid: str) -> str:
    return f"{name};TZID={tzid}:{day:%Y%m%d}T{hhmm}00"


def _vevent(uid: str, summary: str, lines: list[str]) -> list[str]:
    return [
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20260101T000000Z",
        f"SUMMARY:{summary}",
        *lines,
        "END:VEVENT",
    ]


def _all_day(uid: str, summary: str, first: date, end: date) -> list[str]:
    return _vevent(
        uid,
        summary,
        [f"DTSTART;VALUE=DATE:{first:%Y%m%d}", f"DTEND;VALUE=DATE:{end:%Y%m%d}"],
    )


def _resource(events: list[list[str]], zones: list[str] | None = None) -> str:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//calsync//demo//EN"]
    for tzid in zones or []:
        lines += _vtimezone(tzid)
    for event in events:
        lines += event
    lines.append("END:VCALENDAR")
    return "\r\n".join(lines) + "\r\n"


def _vtimezone(tzid: str) -> list[str]:
    standard, daylight = _VTIMEZONES[tzid]
    lines = ["BEGIN:VTIMEZONE", f"TZID:{tzid}"]
    for kind, (offset, name, onset, rule), (before, *_) in (
        ("DAYLIGHT", daylight, standard),
        ("STANDARD", standard, daylight),
    ):
        lines += [
            f"BEGIN:{kind}",
            f"TZOFFSETFROM:{before}",
            f"TZOFFSETTO:{offset}",
            f"TZNAME:{name}",
            f"DTSTART:{onset}",
            f"RRULE:FREQ=YEARLY;{rule}",
            f"END:{kind}",
        ]
    return [*lines, "END:VTIMEZONE"]


def write_calendar(base_url: str, email: str, password: str, today: date) -> None:
    """Create the demo calendar if needed and (re)write every demo event into it.

    Raises httpx.HTTPError when the server refuses.
    """
    with httpx.Client(auth=(email, password), timeout=10.0) as client:
        principal = urljoin(base_url, quote(email) + "/")
        # The first authenticated request makes Radicale create the account's principal.
        client.request("PROPFIND", principal, headers={"Depth": "0"}).raise_for_status()
        calendar = urljoin(principal, CALENDAR_NAME + "/")
        if client.request("PROPFIND", calendar, headers={"Depth": "0"}).status_code == 404:
            body = (
                '<?xml version="1.0" encoding="utf-8"?>'
                '<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
                f"<D:set><D:prop><D:displayname>{CALENDAR_DISPLAY_NAME}</D:displayname>"
                '<C:supported-calendar-component-set><C:comp name="VEVENT"/>'
                "</C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"
            )
            client.request(
                "MKCALENDAR", calendar, content=body, headers={"Content-Type": "application/xml"}
            ).raise_for_status()
        for event in demo_events(today):
            client.put(
                urljoin(calendar, event.filename),
                content=event.ical.encode(),
                headers={"Content-Type": "text/calendar; charset=utf-8"},
            ).raise_for_status()
