"""Tests for calsync.ical.expand: expansion of one CalDAV resource into busy instances."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from calsync.ical.expand import MAX_INSTANCES, BusyInstance, ICalError, expand_resource

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")


def vcal(*events: str, extra: str = "") -> str:
    """A VCALENDAR with the given VEVENT bodies (property lines, one per line)."""
    body = "".join(f"BEGIN:VEVENT\n{e.strip()}\nEND:VEVENT\n" for e in events)
    text = (
        f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//calsync//tests//EN\n{extra}{body}END:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n")


def utc(y: int, m: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, m, d, h, mi, s, tzinfo=UTC)


def expand(
    text: str,
    start: datetime = utc(2026, 1, 1),
    end: datetime = utc(2027, 1, 1),
    *,
    owners: frozenset[str] = frozenset(),
    tz: ZoneInfo = BERLIN,
) -> list[BusyInstance]:
    return expand_resource(
        text, window_start=start, window_end=end, owner_emails=owners, local_tz=tz
    )


def starts(instances: list[BusyInstance]) -> list[datetime]:
    return [i.start for i in instances]


# --- single events -------------------------------------------------------------------------


def test_single_timed_event_with_tzid() -> None:
    text = vcal("""UID:one
SUMMARY:Dentist
DTSTART;TZID=Europe/Berlin:20260310T100000
DTEND;TZID=Europe/Berlin:20260310T113000""")
    assert expand(text) == [
        BusyInstance(
            "one/", "Dentist", False, utc(2026, 3, 10, 9), utc(2026, 3, 10, 10, 30), None, None
        )
    ]


def test_tzid_with_other_iana_zone_and_summer_time() -> None:
    text = vcal("""UID:ny
DTSTART;TZID=America/New_York:20260710T100000
DTEND;TZID=America/New_York:20260710T110000""")
    [instance] = expand(text)
    assert (instance.start, instance.end) == (utc(2026, 7, 10, 14), utc(2026, 7, 10, 15))
    assert instance.start.tzinfo == UTC


def test_utc_event() -> None:
    [instance] = expand(vcal("UID:u\nDTSTART:20260310T100000Z\nDTEND:20260310T110000Z"))
    assert (instance.start, instance.end, instance.title) == (
        utc(2026, 3, 10, 10),
        utc(2026, 3, 10, 11),
        "",
    )


def test_floating_event_is_read_in_local_tz() -> None:
    text = vcal("UID:f\nDTSTART:20260310T100000\nDTEND:20260310T110000")
    [berlin] = expand(text, tz=BERLIN)
    [new_york] = expand(text, tz=NY)
    assert berlin.start == utc(2026, 3, 10, 9)
    assert new_york.start == utc(2026, 3, 10, 14)  # EDT has started on 2026-03-08
    assert new_york.end == utc(2026, 3, 10, 15)


def test_unknown_tzid_without_vtimezone_is_treated_as_floating() -> None:
    text = vcal(
        "UID:x\nDTSTART;TZID=Not/AZone:20260310T100000\nDTEND;TZID=Not/AZone:20260310T110000"
    )
    assert starts(expand(text, tz=NY)) == [utc(2026, 3, 10, 14)]


def test_all_day_single_day() -> None:
    [instance] = expand(vcal("UID:d\nSUMMARY:Holiday\nDTSTART;VALUE=DATE:20260310"))
    assert instance.all_day
    assert (instance.start_date, instance.end_date) == (date(2026, 3, 10), date(2026, 3, 11))
    # local midnights in Berlin (CET, +01:00), expressed in UTC
    assert (instance.start, instance.end) == (utc(2026, 3, 9, 23), utc(2026, 3, 10, 23))
    assert instance.key == "d/"


def test_all_day_multi_day_across_dst_change() -> None:
    text = vcal("UID:d\nDTSTART;VALUE=DATE:20260328\nDTEND;VALUE=DATE:20260331")
    [instance] = expand(text)
    assert (instance.start_date, instance.end_date) == (date(2026, 3, 28), date(2026, 3, 31))
    assert instance.start == utc(2026, 3, 27, 23)  # CET midnight
    assert instance.end == utc(2026, 3, 30, 22)  # CEST midnight


def test_all_day_uses_local_tz_of_the_caller() -> None:
    [instance] = expand(vcal("UID:d\nDTSTART;VALUE=DATE:20260310"), tz=NY)
    assert (instance.start, instance.end) == (utc(2026, 3, 10, 4), utc(2026, 3, 11, 4))


def test_duration_property() -> None:
    text = vcal("UID:p\nDTSTART;TZID=Europe/Berlin:20260310T100000\nDURATION:PT1H30M")
    [instance] = expand(text)
    assert (instance.start, instance.end) == (utc(2026, 3, 10, 9), utc(2026, 3, 10, 10, 30))


def test_duration_days_are_nominal_hours_are_exact_across_dst() -> None:
    # RFC 5545 3.3.6: days keep the local time of day, hours are exact. (icalendar turns
    # PT24H into P1D, so whole multiples of 24 hours count as nominal days.)
    days = vcal("UID:p\nDTSTART;TZID=Europe/Berlin:20260328T120000\nDURATION:P1D")
    assert expand(days)[0].end == utc(2026, 3, 29, 10)  # 12:00 CEST: 23 real hours
    hours = vcal("UID:p\nDTSTART;TZID=Europe/Berlin:20260329T013000\nDURATION:PT2H")
    assert expand(hours)[0].end == utc(2026, 3, 29, 2, 30)  # 04:30 CEST, not 03:30
    mixed = vcal("UID:p\nDTSTART;TZID=Europe/Berlin:20260328T120000\nDURATION:P1DT1H")
    assert expand(mixed)[0].end == utc(2026, 3, 29, 11)


def test_all_day_duration() -> None:
    [instance] = expand(vcal("UID:p\nDTSTART;VALUE=DATE:20260310\nDURATION:P3D"))
    assert instance.end_date == date(2026, 3, 13)


def test_no_end_timed_is_zero_length() -> None:
    [instance] = expand(vcal("UID:z\nDTSTART:20260310T100000Z"))
    assert instance.start == instance.end == utc(2026, 3, 10, 10)


def test_dtend_duration_is_exact_for_every_instance_across_dst() -> None:
    # RFC 5545 3.8.5.3: a DTEND gives every instance the same *exact* duration (2 h here),
    # also for the instance that starts in the night of the change to summer time.
    text = vcal("""UID:r
DTSTART;TZID=Europe/Berlin:20260328T013000
DTEND;TZID=Europe/Berlin:20260328T033000
RRULE:FREQ=DAILY;COUNT=2""")
    spans = [(i.start, i.end) for i in expand(text)]
    assert spans == [
        (utc(2026, 3, 28, 0, 30), utc(2026, 3, 28, 2, 30)),
        (utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 2, 30)),
    ]


# --- RFC 5545 section 3.8.5.3 examples -----------------------------------------------------


@dataclass(frozen=True)
class RfcCase:
    name: str
    dtstart: str  # local America/New_York
    rule: str  # RRULE (and EXDATE) lines
    first: tuple[str, ...]  # expected first starts, local America/New_York "YYYY-MM-DD HH:MM"
    count: int  # expected number of instances in the window
    window: tuple[datetime, datetime] = (utc(1996, 1, 1), utc(2010, 1, 1))
    last: str | None = None


RFC_CASES = [
    RfcCase("daily_10", "19970902T090000", "RRULE:FREQ=DAILY;COUNT=10",
            ("1997-09-02 09:00", "1997-09-03 09:00", "1997-09-04 09:00"), 10,
            last="1997-09-11 09:00"),
    RfcCase("daily_until_dec_24", "19970902T090000", "RRULE:FREQ=DAILY;UNTIL=19971224T000000Z",
            ("1997-09-02 09:00", "1997-09-03 09:00"), 113, last="1997-12-23 09:00"),
    RfcCase("every_other_day_forever", "19970902T090000", "RRULE:FREQ=DAILY;INTERVAL=2",
            ("1997-09-02 09:00", "1997-09-04 09:00", "1997-09-06 09:00"), 15,
            window=(utc(1997, 9, 1), utc(1997, 10, 1)), last="1997-09-30 09:00"),
    RfcCase("every_10_days_5", "19970902T090000", "RRULE:FREQ=DAILY;INTERVAL=10;COUNT=5",
            ("1997-09-02 09:00", "1997-09-12 09:00", "1997-09-22 09:00", "1997-10-02 09:00",
             "1997-10-12 09:00"), 5),
    RfcCase("january_3_years_yearly", "19980101T090000",
            "RRULE:FREQ=YEARLY;UNTIL=20000131T140000Z;BYMONTH=1;BYDAY=SU,MO,TU,WE,TH,FR,SA",
            ("1998-01-01 09:00", "1998-01-02 09:00"), 93, last="2000-01-31 09:00"),
    RfcCase("january_3_years_daily", "19980101T090000",
            "RRULE:FREQ=DAILY;UNTIL=20000131T140000Z;BYMONTH=1",
            ("1998-01-01 09:00", "1998-01-02 09:00"), 93, last="2000-01-31 09:00"),
    RfcCase("weekly_10", "19970902T090000", "RRULE:FREQ=WEEKLY;COUNT=10",
            ("1997-09-02 09:00", "1997-09-09 09:00", "1997-09-16 09:00"), 10,
            last="1997-11-04 09:00"),
    RfcCase("weekly_until_dec_24", "19970902T090000", "RRULE:FREQ=WEEKLY;UNTIL=19971224T000000Z",
            ("1997-09-02 09:00", "1997-09-09 09:00"), 17, last="1997-12-23 09:00"),
    RfcCase("every_other_week_forever", "19970902T090000", "RRULE:FREQ=WEEKLY;INTERVAL=2;WKST=SU",
            ("1997-09-02 09:00", "1997-09-16 09:00", "1997-09-30 09:00", "1997-10-14 09:00",
             "1997-10-28 09:00"), 11,
            window=(utc(1997, 9, 1), utc(1998, 2, 1)), last="1998-01-20 09:00"),
    RfcCase("tue_thu_5_weeks", "19970902T090000",
            "RRULE:FREQ=WEEKLY;UNTIL=19971007T000000Z;WKST=SU;BYDAY=TU,TH",
            ("1997-09-02 09:00", "1997-09-04 09:00", "1997-09-09 09:00"), 10,
            last="1997-10-02 09:00"),
    RfcCase("every_other_week_mo_we_fr", "19970901T090000",
            "RRULE:FREQ=WEEKLY;INTERVAL=2;UNTIL=19971224T000000Z;WKST=SU;BYDAY=MO,WE,FR",
            ("1997-09-01 09:00", "1997-09-03 09:00", "1997-09-05 09:00", "1997-09-15 09:00"), 25,
            last="1997-12-22 09:00"),
    RfcCase("every_other_week_tu_th_8", "19970902T090000",
            "RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=8;WKST=SU;BYDAY=TU,TH",
            ("1997-09-02 09:00", "1997-09-04 09:00", "1997-09-16 09:00", "1997-09-18 09:00",
             "1997-09-30 09:00", "1997-10-02 09:00", "1997-10-14 09:00", "1997-10-16 09:00"), 8),
    RfcCase("monthly_first_friday_10", "19970905T090000", "RRULE:FREQ=MONTHLY;COUNT=10;BYDAY=1FR",
            ("1997-09-05 09:00", "1997-10-03 09:00", "1997-11-07 09:00", "1997-12-05 09:00",
             "1998-01-02 09:00"), 10, last="1998-06-05 09:00"),
    RfcCase("monthly_first_friday_until", "19970905T090000",
            "RRULE:FREQ=MONTHLY;UNTIL=19971224T000000Z;BYDAY=1FR",
            ("1997-09-05 09:00", "1997-10-03 09:00", "1997-11-07 09:00", "1997-12-05 09:00"), 4),
    RfcCase("every_other_month_first_last_sunday", "19970907T090000",
            "RRULE:FREQ=MONTHLY;INTERVAL=2;COUNT=10;BYDAY=1SU,-1SU",
            ("1997-09-07 09:00", "1997-09-28 09:00", "1997-11-02 09:00", "1997-11-30 09:00"), 10,
            last="1998-05-31 09:00"),
    RfcCase("second_to_last_monday_6", "19970922T090000", "RRULE:FREQ=MONTHLY;COUNT=6;BYDAY=-2MO",
            ("1997-09-22 09:00", "1997-10-20 09:00", "1997-11-17 09:00", "1997-12-22 09:00",
             "1998-01-19 09:00", "1998-02-16 09:00"), 6),
    RfcCase("third_to_last_day", "19970928T090000", "RRULE:FREQ=MONTHLY;BYMONTHDAY=-3",
            ("1997-09-28 09:00", "1997-10-29 09:00", "1997-11-28 09:00", "1997-12-29 09:00",
             "1998-01-29 09:00", "1998-02-26 09:00"), 6,
            window=(utc(1997, 9, 1), utc(1998, 3, 1))),
    RfcCase("first_and_last_day_10", "19970930T090000",
            "RRULE:FREQ=MONTHLY;COUNT=10;BYMONTHDAY=1,-1",
            ("1997-09-30 09:00", "1997-10-01 09:00", "1997-10-31 09:00", "1997-11-01 09:00"), 10,
            last="1998-02-01 09:00"),
    RfcCase("every_18_months_10th_to_15th", "19970910T090000",
            "RRULE:FREQ=MONTHLY;INTERVAL=18;COUNT=10;BYMONTHDAY=10,11,12,13,14,15",
            ("1997-09-10 09:00", "1997-09-11 09:00", "1997-09-12 09:00"), 10,
            last="1999-03-13 09:00"),
    RfcCase("yearly_june_july_10", "19970610T090000", "RRULE:FREQ=YEARLY;COUNT=10;BYMONTH=6,7",
            ("1997-06-10 09:00", "1997-07-10 09:00", "1998-06-10 09:00", "1998-07-10 09:00"), 10,
            last="2001-07-10 09:00"),
    RfcCase("every_other_year_jan_feb_mar", "19970310T090000",
            "RRULE:FREQ=YEARLY;INTERVAL=2;COUNT=10;BYMONTH=1,2,3",
            ("1997-03-10 09:00", "1999-01-10 09:00", "1999-02-10 09:00", "1999-03-10 09:00"), 10,
            last="2003-03-10 09:00"),
    RfcCase("every_third_year_yeardays", "19970101T090000",
            "RRULE:FREQ=YEARLY;INTERVAL=3;COUNT=10;BYYEARDAY=1,100,200",
            ("1997-01-01 09:00", "1997-04-10 09:00", "1997-07-19 09:00", "2000-01-01 09:00",
             "2000-04-09 09:00", "2000-07-18 09:00"), 10, last="2006-01-01 09:00"),
    RfcCase("every_20th_monday", "19970519T090000", "RRULE:FREQ=YEARLY;BYDAY=20MO",
            ("1997-05-19 09:00", "1998-05-18 09:00", "1999-05-17 09:00"), 3,
            window=(utc(1997, 1, 1), utc(2000, 1, 1))),
    RfcCase("monday_of_week_20", "19970512T090000", "RRULE:FREQ=YEARLY;BYWEEKNO=20;BYDAY=MO",
            ("1997-05-12 09:00", "1998-05-11 09:00", "1999-05-17 09:00"), 3,
            window=(utc(1997, 1, 1), utc(2000, 1, 1))),
    RfcCase("thursdays_in_march", "19970313T090000", "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=TH",
            ("1997-03-13 09:00", "1997-03-20 09:00", "1997-03-27 09:00", "1998-03-05 09:00"), 11,
            window=(utc(1997, 1, 1), utc(2000, 1, 1)), last="1999-03-25 09:00"),
    RfcCase("friday_13th", "19970902T090000",
            "EXDATE;TZID=America/New_York:19970902T090000\nRRULE:FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13",
            ("1998-02-13 09:00", "1998-03-13 09:00", "1998-11-13 09:00", "1999-08-13 09:00",
             "2000-10-13 09:00"), 5, window=(utc(1997, 1, 1), utc(2000, 12, 1))),
    RfcCase("saturday_after_first_sunday", "19970913T090000",
            "RRULE:FREQ=MONTHLY;BYDAY=SA;BYMONTHDAY=7,8,9,10,11,12,13",
            ("1997-09-13 09:00", "1997-10-11 09:00", "1997-11-08 09:00", "1997-12-13 09:00",
             "1998-01-10 09:00", "1998-02-07 09:00"), 10,
            window=(utc(1997, 9, 1), utc(1998, 7, 1)), last="1998-06-13 09:00"),
    RfcCase("us_election_day", "19961105T090000",
            "RRULE:FREQ=YEARLY;INTERVAL=4;BYMONTH=11;BYDAY=TU;BYMONTHDAY=2,3,4,5,6,7,8",
            ("1996-11-05 09:00", "2000-11-07 09:00", "2004-11-02 09:00"), 3,
            window=(utc(1996, 1, 1), utc(2005, 1, 1))),
    RfcCase("third_tue_wed_thu_of_month", "19970904T090000",
            "RRULE:FREQ=MONTHLY;COUNT=3;BYDAY=TU,WE,TH;BYSETPOS=3",
            ("1997-09-04 09:00", "1997-10-07 09:00", "1997-11-06 09:00"), 3),
    RfcCase("second_to_last_weekday", "19970929T090000",
            "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-2",
            ("1997-09-29 09:00", "1997-10-30 09:00", "1997-11-27 09:00", "1997-12-30 09:00",
             "1998-01-29 09:00", "1998-02-26 09:00", "1998-03-30 09:00"), 7,
            window=(utc(1997, 9, 1), utc(1998, 4, 1))),
    # Not in the RFC, derived by hand from a 1997/98 calendar: the *last* weekday.
    RfcCase("last_weekday_bysetpos_minus_1", "19970930T090000",
            "RRULE:FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1",
            ("1997-09-30 09:00", "1997-10-31 09:00", "1997-11-28 09:00", "1997-12-31 09:00",
             "1998-01-30 09:00", "1998-02-27 09:00"), 6,
            window=(utc(1997, 9, 1), utc(1998, 3, 1))),
    # The RFC lists 09:00, 12:00 and 15:00, but its UNTIL (17:00Z) is 13:00 EDT, so the
    # normative reading (and every mainstream library) gives two instances.
    RfcCase("every_3_hours_until_rfc_text", "19970902T090000",
            "RRULE:FREQ=HOURLY;INTERVAL=3;UNTIL=19970902T170000Z",
            ("1997-09-02 09:00", "1997-09-02 12:00"), 2),
    RfcCase("every_3_hours_until_5pm_local", "19970902T090000",
            "RRULE:FREQ=HOURLY;INTERVAL=3;UNTIL=19970902T210000Z",
            ("1997-09-02 09:00", "1997-09-02 12:00", "1997-09-02 15:00"), 3),
    RfcCase("every_15_minutes_6", "19970902T090000", "RRULE:FREQ=MINUTELY;INTERVAL=15;COUNT=6",
            ("1997-09-02 09:00", "1997-09-02 09:15", "1997-09-02 09:30", "1997-09-02 09:45",
             "1997-09-02 10:00", "1997-09-02 10:15"), 6),
    RfcCase("every_90_minutes_4", "19970902T090000", "RRULE:FREQ=MINUTELY;INTERVAL=90;COUNT=4",
            ("1997-09-02 09:00", "1997-09-02 10:30", "1997-09-02 12:00", "1997-09-02 13:30"), 4),
    RfcCase("every_20_minutes_daily_form", "19970902T090000",
            "RRULE:FREQ=DAILY;BYHOUR=9,10,11,12,13,14,15,16;BYMINUTE=0,20,40",
            ("1997-09-02 09:00", "1997-09-02 09:20", "1997-09-02 09:40", "1997-09-02 10:00"), 48,
            window=(utc(1997, 9, 2, 4), utc(1997, 9, 4, 4)), last="1997-09-03 16:40"),
    RfcCase("every_20_minutes_minutely_form", "19970902T090000",
            "RRULE:FREQ=MINUTELY;INTERVAL=20;BYHOUR=9,10,11,12,13,14,15,16",
            ("1997-09-02 09:00", "1997-09-02 09:20", "1997-09-02 09:40", "1997-09-02 10:00"), 48,
            window=(utc(1997, 9, 2, 4), utc(1997, 9, 4, 4)), last="1997-09-03 16:40"),
    RfcCase("wkst_monday", "19970805T090000",
            "RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=MO",
            ("1997-08-05 09:00", "1997-08-10 09:00", "1997-08-19 09:00", "1997-08-24 09:00"), 4),
    RfcCase("wkst_sunday", "19970805T090000",
            "RRULE:FREQ=WEEKLY;INTERVAL=2;COUNT=4;BYDAY=TU,SU;WKST=SU",
            ("1997-08-05 09:00", "1997-08-17 09:00", "1997-08-19 09:00", "1997-08-31 09:00"), 4),
    RfcCase("invalid_dates_are_skipped", "20070115T090000",
            "RRULE:FREQ=MONTHLY;BYMONTHDAY=15,30;COUNT=5",
            ("2007-01-15 09:00", "2007-01-30 09:00", "2007-02-15 09:00", "2007-03-15 09:00",
             "2007-03-30 09:00"), 5, window=(utc(2007, 1, 1), utc(2008, 1, 1))),
]  # fmt: skip


def rfc_text(case: RfcCase) -> str:
    return vcal(
        f"UID:rfc\nSUMMARY:{case.name}\nDTSTART;TZID=America/New_York:{case.dtstart}\n{case.rule}"
    )


def ny(local: str) -> datetime:
    return datetime.strptime(local, "%Y-%m-%d %H:%M").replace(tzinfo=NY).astimezone(UTC)


@pytest.mark.parametrize("case", RFC_CASES, ids=[c.name for c in RFC_CASES])
def test_rfc5545_rrule_examples(case: RfcCase) -> None:
    got = starts(expand(rfc_text(case), *case.window))
    assert got[: len(case.first)] == [ny(s) for s in case.first]
    assert len(got) == case.count
    if case.last is not None:
        assert got[-1] == ny(case.last)
    assert len(set(got)) == len(got)


def test_rfc_examples_convert_to_utc_across_the_1997_dst_end() -> None:
    # Independent of zoneinfo: EDT is UTC-4 until 1997-10-26, EST is UTC-5 after.
    [weekly] = [c for c in RFC_CASES if c.name == "weekly_10"]
    got = starts(expand(rfc_text(weekly), *weekly.window))
    assert got[0] == utc(1997, 9, 2, 13)
    assert got[7] == utc(1997, 10, 21, 13)
    assert got[8] == utc(1997, 10, 28, 14)
    assert got[9] == utc(1997, 11, 4, 14)


@pytest.mark.parametrize("case", RFC_CASES, ids=[c.name for c in RFC_CASES])
def test_rfc_examples_agree_with_recurring_ical_events(case: RfcCase) -> None:
    assert starts(expand(rfc_text(case), *case.window)) == library_starts(
        rfc_text(case), *case.window
    )


def library_starts(text: str, start: datetime, end: datetime) -> list[datetime]:
    """Reference starts from recurring-ical-events (only for cases it handles correctly)."""
    query = recurring_ical_events.of(icalendar.Calendar.from_ical(text))
    result = [e["DTSTART"].dt for e in query.between(start, end)]
    return sorted(d.astimezone(UTC) for d in result)


RULES = [
    "FREQ=DAILY", "FREQ=DAILY;INTERVAL=3;BYDAY=MO,TU,SA", "FREQ=WEEKLY;INTERVAL=2;BYDAY=TU,SU",
    "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=MONTHLY;INTERVAL=5;BYMONTHDAY=1,-1",
    "FREQ=YEARLY;BYMONTH=3,10;BYDAY=-1SU", "FREQ=HOURLY;INTERVAL=5;BYDAY=MO,FR",
    "FREQ=HOURLY;INTERVAL=7;BYMONTH=3,4;BYMONTHDAY=28,29,30", "FREQ=MINUTELY;INTERVAL=97;BYDAY=SU",
    "FREQ=DAILY;BYHOUR=2,3;BYMINUTE=30", "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=40",
]  # fmt: skip


# derandomize: CI runs the same examples every time (a new one found is a new fixed case).
@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    rule=st.sampled_from(RULES),
    dtstart=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31)),
    offset_days=st.integers(min_value=-30, max_value=400),
    length_days=st.integers(min_value=1, max_value=40),
)
@example(
    rule="FREQ=DAILY;BYHOUR=2,3;BYMINUTE=30",
    dtstart=datetime(2024, 1, 1),
    offset_days=262,
    length_days=40,
)
def test_recurrences_agree_with_recurring_ical_events(
    rule: str, dtstart: datetime, offset_days: int, length_days: int
) -> None:
    # Includes sub-daily rules with day filters and windows far after DTSTART, i.e. the
    # fast-forward and day-by-day paths; times fall into DST gaps and folds too.
    text = vcal(f"UID:h\nDTSTART;TZID=Europe/Berlin:{dtstart:%Y%m%dT%H%M%S}\nRRULE:{rule}")
    start = datetime(2025, 6, 1, tzinfo=UTC) + timedelta(days=offset_days)
    end = start + timedelta(days=length_days)
    # Two local times of one day can land on the same instant (02:30 in the spring-forward
    # gap is read with the offset before it, RFC 5545 3.3.5, and so equals 03:30): calsync
    # keeps one busy block there, the library two identical ones.
    expected = sorted(set(library_starts(text, start, end)))
    assert starts(expand(text, start, end)) == expected


# --- daylight saving time and time zones ---------------------------------------------------


def test_weekly_berlin_event_keeps_local_time_across_both_dst_changes() -> None:
    text = vcal("""UID:w
DTSTART;TZID=Europe/Berlin:20260316T090000
DTEND;TZID=Europe/Berlin:20260316T100000
RRULE:FREQ=WEEKLY;BYDAY=MO""")
    march = starts(expand(text, utc(2026, 3, 16), utc(2026, 4, 7)))
    assert march == [
        utc(2026, 3, 16, 8),
        utc(2026, 3, 23, 8),
        utc(2026, 3, 30, 7),
        utc(2026, 4, 6, 7),
    ]
    october = starts(expand(text, utc(2026, 10, 12), utc(2026, 11, 3)))
    assert october == [
        utc(2026, 10, 12, 7),
        utc(2026, 10, 19, 7),
        utc(2026, 10, 26, 8),
        utc(2026, 11, 2, 8),
    ]


def test_floating_weekly_event_follows_local_tz_dst() -> None:
    text = vcal("UID:w\nDTSTART:20260323T090000\nRRULE:FREQ=WEEKLY;COUNT=2")
    assert starts(expand(text)) == [utc(2026, 3, 23, 8), utc(2026, 3, 30, 7)]


CUSTOM_TZ = """BEGIN:VTIMEZONE
TZID:Fictional Standard Time
BEGIN:STANDARD
DTSTART:19701101T020000
TZOFFSETFROM:+0400
TZOFFSETTO:+0300
RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700405T020000
TZOFFSETFROM:+0300
TZOFFSETTO:+0400
RRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU
END:DAYLIGHT
END:VTIMEZONE
"""


def test_custom_vtimezone_with_non_iana_tzid() -> None:
    text = vcal(
        """UID:c
DTSTART;TZID=Fictional Standard Time:20260330T090000
DTEND;TZID=Fictional Standard Time:20260330T100000
RRULE:FREQ=WEEKLY;COUNT=3""",
        extra=CUSTOM_TZ,
    )
    spans = [(i.start, i.end) for i in expand(text)]
    # +03:00 until the first Sunday of April (2026-04-05), +04:00 afterwards
    assert spans == [
        (utc(2026, 3, 30, 6), utc(2026, 3, 30, 7)),
        (utc(2026, 4, 6, 5), utc(2026, 4, 6, 6)),
        (utc(2026, 4, 13, 5), utc(2026, 4, 13, 6)),
    ]


def test_windows_tzid_name() -> None:
    text = vcal("UID:w\nDTSTART;TZID=W. Europe Standard Time:20260710T100000")
    assert starts(expand(text)) == [utc(2026, 7, 10, 8)]


# --- EXDATE, RDATE, overrides --------------------------------------------------------------

DAILY_5 = """UID:s
SUMMARY:Standup
DTSTART;TZID=Europe/Berlin:20260309T100000
DTEND;TZID=Europe/Berlin:20260309T101500
RRULE:FREQ=DAILY;COUNT=5"""


def test_exdate_in_tzid_and_in_utc_form() -> None:
    text = vcal(DAILY_5 + "\nEXDATE;TZID=Europe/Berlin:20260310T100000\nEXDATE:20260312T090000Z")
    assert starts(expand(text)) == [utc(2026, 3, 9, 9), utc(2026, 3, 11, 9), utc(2026, 3, 13, 9)]


def test_exdate_with_several_values_and_date_value() -> None:
    text = vcal(
        DAILY_5 + "\nEXDATE;TZID=Europe/Berlin:20260309T100000,20260313T100000"
        "\nEXDATE;VALUE=DATE:20260311"
    )
    assert starts(expand(text)) == [utc(2026, 3, 10, 9), utc(2026, 3, 12, 9)]


def test_rdate_including_periods() -> None:
    text = vcal(
        DAILY_5 + "\nRDATE;TZID=Europe/Berlin:20260320T160000"
        "\nRDATE;VALUE=PERIOD:20260321T120000Z/20260321T150000Z,20260322T120000Z/PT2H"
    )
    got = [(i.start, i.end) for i in expand(text)][5:]
    assert got == [
        (utc(2026, 3, 20, 15), utc(2026, 3, 20, 15, 15)),
        (utc(2026, 3, 21, 12), utc(2026, 3, 21, 15)),
        (utc(2026, 3, 22, 12), utc(2026, 3, 22, 14)),
    ]
    assert len(expand(text)) == 8


def test_rdate_only_series_includes_dtstart() -> None:
    text = vcal("UID:r\nDTSTART:20260310T100000Z\nRDATE:20260311T100000Z")
    got = expand(text)
    assert starts(got) == [utc(2026, 3, 10, 10), utc(2026, 3, 11, 10)]
    assert [i.key for i in got] == ["r/2026-03-10T10:00:00+00:00", "r/2026-03-11T10:00:00+00:00"]


def test_all_day_recurrence_with_rdate_exdate_and_date_until() -> None:
    text = vcal("""UID:a
DTSTART;VALUE=DATE:20260309
RRULE:FREQ=DAILY;UNTIL=20260312
EXDATE;VALUE=DATE:20260310
RDATE;VALUE=DATE:20260320""")
    got = expand(text)
    assert [i.start_date for i in got] == [
        date(2026, 3, 9),
        date(2026, 3, 11),
        date(2026, 3, 12),
        date(2026, 3, 20),
    ]
    assert got[0].key == "a/2026-03-09"
    assert all(i.all_day for i in got)
    assert [i.end_date for i in got] == [
        date(2026, 3, 10),
        date(2026, 3, 12),
        date(2026, 3, 13),
        date(2026, 3, 21),
    ]


def test_override_moves_one_instance() -> None:
    text = vcal(
        DAILY_5,
        """UID:s
RECURRENCE-ID;TZID=Europe/Berlin:20260311T100000
SUMMARY:Standup (moved)
DTSTART;TZID=Europe/Berlin:20260311T150000
DTEND;TZID=Europe/Berlin:20260311T160000""",
    )
    got = expand(text)
    assert utc(2026, 3, 11, 9) not in starts(got)
    moved = [i for i in got if i.start == utc(2026, 3, 11, 14)]
    assert [(m.title, m.end, m.key) for m in moved] == [
        ("Standup (moved)", utc(2026, 3, 11, 15), "s/2026-03-11T09:00:00+00:00")
    ]
    assert len(got) == 5
    assert len({i.key for i in got}) == 5


def test_override_moves_instance_into_and_out_of_the_window() -> None:
    text = vcal(
        DAILY_5,
        """UID:s
RECURRENCE-ID;TZID=Europe/Berlin:20260313T100000
DTSTART;TZID=Europe/Berlin:20260301T100000
DTEND;TZID=Europe/Berlin:20260301T110000""",
        """UID:s
RECURRENCE-ID;TZID=Europe/Berlin:20260320T100000
DTSTART;TZID=Europe/Berlin:20260310T180000
DTEND;TZID=Europe/Berlin:20260310T190000""",
    )
    # 03-13 moved out to 03-01 (before the window); an instance outside the series
    # (03-20, as if from an old rule) moved into the window on 03-10.
    got = expand(text, utc(2026, 3, 9), utc(2026, 3, 14))
    assert starts(got) == [
        utc(2026, 3, 9, 9),
        utc(2026, 3, 10, 9),
        utc(2026, 3, 10, 17),
        utc(2026, 3, 11, 9),
        utc(2026, 3, 12, 9),
    ]
    assert starts(expand(text, utc(2026, 2, 28), utc(2026, 3, 2))) == [utc(2026, 3, 1, 9)]


def test_override_sequence_highest_wins() -> None:
    text = vcal(
        DAILY_5,
        "UID:s\nSEQUENCE:1\nRECURRENCE-ID:20260310T090000Z\nDTSTART:20260310T120000Z\nSUMMARY:one",
        "UID:s\nSEQUENCE:2\nRECURRENCE-ID:20260310T090000Z\nDTSTART:20260310T130000Z\nSUMMARY:two",
    )
    got = [i for i in expand(text) if i.key == "s/2026-03-10T09:00:00+00:00"]
    assert [(i.title, i.start) for i in got] == [("two", utc(2026, 3, 10, 13))]


def test_override_cancels_one_instance() -> None:
    text = vcal(
        DAILY_5,
        """UID:s
RECURRENCE-ID;TZID=Europe/Berlin:20260311T100000
STATUS:CANCELLED
DTSTART;TZID=Europe/Berlin:20260311T100000
DTEND;TZID=Europe/Berlin:20260311T101500""",
    )
    assert starts(expand(text)) == [
        utc(2026, 3, 9, 9),
        utc(2026, 3, 10, 9),
        utc(2026, 3, 12, 9),
        utc(2026, 3, 13, 9),
    ]


def test_override_without_master() -> None:
    text = vcal(
        "UID:o\nRECURRENCE-ID:20260310T090000Z\nDTSTART:20260310T100000Z\nDTEND:20260310T110000Z"
    )
    got = expand(text)
    assert [(i.key, i.start) for i in got] == [
        ("o/2026-03-10T09:00:00+00:00", utc(2026, 3, 10, 10))
    ]


def test_this_and_future_override() -> None:
    text = vcal(
        """UID:t
SUMMARY:old
DTSTART;TZID=Europe/Berlin:20260316T090000
DTEND;TZID=Europe/Berlin:20260316T100000
RRULE:FREQ=WEEKLY;COUNT=4""",
        """UID:t
SUMMARY:new
RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Berlin:20260323T090000
DTSTART;TZID=Europe/Berlin:20260323T110000
DTEND;TZID=Europe/Berlin:20260323T113000""",
    )
    got = [(i.title, i.start, i.end, i.key) for i in expand(text)]
    assert got == [
        ("old", utc(2026, 3, 16, 8), utc(2026, 3, 16, 9), "t/2026-03-16T08:00:00+00:00"),
        ("new", utc(2026, 3, 23, 10), utc(2026, 3, 23, 10, 30), "t/2026-03-23T08:00:00+00:00"),
        # later instances move by the same local offset (+2 h), also after the DST change
        ("new", utc(2026, 3, 30, 9), utc(2026, 3, 30, 9, 30), "t/2026-03-30T07:00:00+00:00"),
        ("new", utc(2026, 4, 6, 9), utc(2026, 4, 6, 9, 30), "t/2026-04-06T07:00:00+00:00"),
    ]


# --- exclusions ----------------------------------------------------------------------------


def test_transparent_is_not_busy_but_an_opaque_override_is() -> None:
    text = vcal(
        DAILY_5 + "\nTRANSP:TRANSPARENT",
        "UID:s\nRECURRENCE-ID:20260310T090000Z\nTRANSP:OPAQUE\nDTSTART:20260310T090000Z",
    )
    assert [i.key for i in expand(text)] == ["s/2026-03-10T09:00:00+00:00"]
    assert expand(vcal("UID:x\nDTSTART:20260310T100000Z\nTRANSP:TRANSPARENT")) == []


def test_cancelled_master_drops_the_whole_series() -> None:
    text = vcal(
        DAILY_5 + "\nSTATUS:CANCELLED",
        "UID:s\nRECURRENCE-ID:20260310T090000Z\nSTATUS:CONFIRMED\nDTSTART:20260310T120000Z",
    )
    assert expand(text) == []
    assert expand(vcal("UID:x\nDTSTART:20260310T100000Z\nSTATUS:cancelled")) == []
    assert len(expand(vcal("UID:x\nDTSTART:20260310T100000Z\nSTATUS:TENTATIVE"))) == 1


def test_declined_by_owner_is_not_busy() -> None:
    text = vcal("""UID:d
DTSTART:20260310T100000Z
ORGANIZER:mailto:boss@example.com
ATTENDEE;PARTSTAT=ACCEPTED:mailto:boss@example.com
ATTENDEE;CN=Me;PARTSTAT=DECLINED:MAILTO:Me@Example.COM""")
    assert expand(text, owners=frozenset({"me@example.com"})) == []
    assert expand(text, owners=frozenset({"mailto:ME@example.com"})) == []
    # someone else's decline does not matter
    assert len(expand(text, owners=frozenset({"boss@example.com"}))) == 1
    assert len(expand(text)) == 1


def test_owner_declines_one_instance_via_override() -> None:
    text = vcal(
        DAILY_5 + "\nATTENDEE;PARTSTAT=ACCEPTED:mailto:me@example.com",
        """UID:s
RECURRENCE-ID:20260311T090000Z
DTSTART:20260311T090000Z
ATTENDEE;PARTSTAT=DECLINED:mailto:me@example.com""",
    )
    got = starts(expand(text, owners=frozenset({"me@example.com"})))
    assert got == [
        utc(2026, 3, 9, 9),
        utc(2026, 3, 10, 9),
        utc(2026, 3, 12, 9),
        utc(2026, 3, 13, 9),
    ]


def test_calsync_exported_events_are_ignored() -> None:
    assert expand(vcal("UID:x\nDTSTART:20260310T100000Z\nX-CALSYNC-EXPORT:session-42")) == []
    series = vcal(
        DAILY_5 + "\nX-CALSYNC-EXPORT:1",
        "UID:s\nRECURRENCE-ID:20260310T090000Z\nDTSTART:20260310T120000Z",
    )
    assert expand(series) == []


def test_other_components_are_ignored() -> None:
    text = vcal(
        "UID:e\nDTSTART:20260310T100000Z\nDTEND:20260310T110000Z\n"
        "BEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:x\nTRIGGER:-PT15M\nEND:VALARM",
        extra=(
            "BEGIN:VTODO\nUID:t\nDTSTART:20260310T120000Z\nDUE:20260310T130000Z\nEND:VTODO\n"
            "BEGIN:VJOURNAL\nUID:j\nDTSTART:20260310T140000Z\nEND:VJOURNAL\n"
            "BEGIN:VFREEBUSY\nUID:f\nDTSTART:20260310T000000Z\nDTEND:20260311T000000Z\n"
            "FREEBUSY:20260310T150000Z/PT1H\nEND:VFREEBUSY\n"
        ),
    )
    assert [(i.key, i.start, i.end) for i in expand(text)] == [
        ("e/", utc(2026, 3, 10, 10), utc(2026, 3, 10, 11))
    ]


def test_byte_order_mark_and_bare_line_feeds_are_accepted() -> None:
    text = "\ufeffBEGIN:VCALENDAR\nVERSION:2.0\nBEGIN:VEVENT\nUID:x\nDTSTART:20260310T100000Z\n"
    text += "END:VEVENT\nEND:VCALENDAR\n"
    assert [i.key for i in expand(text)] == ["x/"]


def test_vevent_without_dtstart_is_skipped() -> None:
    text = vcal("UID:bad\nSUMMARY:no start", "UID:good\nDTSTART:20260310T100000Z")
    assert [i.key for i in expand(text)] == ["good/"]


# --- window ---------------------------------------------------------------------------------

ONE_HOUR = vcal("UID:h\nDTSTART:20260310T100000Z\nDTEND:20260310T110000Z")
ZERO = vcal("UID:z\nDTSTART:20260310T100000Z")
ALL_DAY = vcal("UID:a\nDTSTART;VALUE=DATE:20260310")  # Berlin: 03-09 23:00Z .. 03-10 23:00Z


@pytest.mark.parametrize(
    ("text", "start", "end", "included"),
    [
        (ONE_HOUR, utc(2026, 3, 10, 9), utc(2026, 3, 10, 10), False),
        (ONE_HOUR, utc(2026, 3, 10, 9), utc(2026, 3, 10, 10, 0, 1), True),
        (ONE_HOUR, utc(2026, 3, 10, 11), utc(2026, 3, 10, 12), False),
        (ONE_HOUR, utc(2026, 3, 10, 10, 59, 59), utc(2026, 3, 10, 12), True),
        (ONE_HOUR, utc(2026, 3, 10, 10, 15), utc(2026, 3, 10, 10, 45), True),
        (ZERO, utc(2026, 3, 10, 10), utc(2026, 3, 10, 11), True),
        (ZERO, utc(2026, 3, 10, 9), utc(2026, 3, 10, 10), False),
        (ZERO, utc(2026, 3, 10, 9), utc(2026, 3, 10, 10, 0, 1), True),
        (ZERO, utc(2026, 3, 10, 10, 0, 1), utc(2026, 3, 10, 11), False),
        (ALL_DAY, utc(2026, 3, 10, 22, 59), utc(2026, 3, 11), True),
        (ALL_DAY, utc(2026, 3, 10, 23), utc(2026, 3, 11), False),
        (ALL_DAY, utc(2026, 3, 9, 12), utc(2026, 3, 9, 23), False),
        (ALL_DAY, utc(2026, 3, 9, 12), utc(2026, 3, 9, 23, 1), True),
    ],
)
def test_window_overlap_is_half_open(
    text: str, start: datetime, end: datetime, included: bool
) -> None:
    assert bool(expand(text, start, end)) is included


def test_window_in_another_time_zone() -> None:
    start = datetime(2026, 3, 10, 5, 30, tzinfo=NY)  # EDT: 09:30Z
    assert starts(expand(ONE_HOUR, start, start + timedelta(hours=1))) == [utc(2026, 3, 10, 10)]


def test_naive_window_is_rejected() -> None:
    with pytest.raises(ValueError, match="aware"):
        expand(ONE_HOUR, datetime(2026, 1, 1), datetime(2027, 1, 1))


def test_unbounded_rule_is_cut_at_the_window() -> None:
    text = vcal("UID:f\nDTSTART;TZID=Europe/Berlin:20200106T090000\nRRULE:FREQ=DAILY")
    got = expand(text, utc(2026, 3, 2), utc(2026, 3, 9))
    assert starts(got) == [utc(2026, 3, d, 8) for d in range(2, 9)]


def test_result_is_sorted_with_unique_keys() -> None:
    text = vcal(
        "UID:b\nDTSTART:20260310T100000Z\nDTEND:20260310T120000Z",
        "UID:a\nDTSTART:20260310T100000Z\nDTEND:20260310T110000Z",
        "UID:c\nDTSTART:20260309T100000Z\nRRULE:FREQ=DAILY;COUNT=3",
    )
    got = expand(text)
    assert [(i.start, i.end, i.key) for i in got] == sorted((i.start, i.end, i.key) for i in got)
    # same start: the shorter one (zero-length c) first, then a (1 h), then b (2 h)
    assert [i.key for i in got] == [
        "c/2026-03-09T10:00:00+00:00",
        "c/2026-03-10T10:00:00+00:00",
        "a/",
        "b/",
        "c/2026-03-11T10:00:00+00:00",
    ]
    assert len({i.key for i in got}) == len(got)


# --- bounds ---------------------------------------------------------------------------------


def test_instance_cap_for_secondly_rule_over_400_days(caplog: pytest.LogCaptureFixture) -> None:
    text = vcal("UID:p\nDTSTART:20260101T000000Z\nRRULE:FREQ=SECONDLY")
    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        got = expand(text, utc(2026, 1, 1), utc(2026, 1, 1) + timedelta(days=400))
    assert time.monotonic() - began < 20
    assert len(got) == MAX_INSTANCES == 50_000
    assert got[0].start == utc(2026, 1, 1)
    assert got[-1].start == utc(2026, 1, 1) + timedelta(seconds=MAX_INSTANCES - 1)
    assert "cut" in caplog.text


def test_dense_rule_starting_long_before_the_window_is_fast_forwarded() -> None:
    text = vcal("UID:p\nDTSTART:20000101T000007Z\nRRULE:FREQ=MINUTELY;INTERVAL=7")
    began = time.monotonic()
    got = expand(text, utc(2026, 3, 1), utc(2026, 3, 1, 1))
    assert time.monotonic() - began < 5
    first, step = utc(2000, 1, 1, 0, 0, 7), timedelta(minutes=7)
    k = -(-(utc(2026, 3, 1) - first) // step)  # first instance at or after the window start
    assert starts(got) == [
        first + step * (k + i) for i in range(9) if first + step * (k + i) < utc(2026, 3, 1, 1)
    ]
    assert len(got) >= 8


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=SECONDLY;BYHOUR=5;BYMONTH=2;BYMONTHDAY=30",  # never matches
        "FREQ=MINUTELY;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;BYMONTH=4;BYMONTHDAY=31",
        "FREQ=SECONDLY;COUNT=1000000000",  # dense with COUNT from long ago: budget
    ],
)
def test_pathological_rules_are_bounded(rule: str) -> None:
    text = vcal(f"UID:p\nDTSTART:20000101T000000Z\nRRULE:{rule}")
    began = time.monotonic()
    assert expand(text, utc(2026, 1, 1), utc(2027, 2, 5)) == []
    assert time.monotonic() - began < 10


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "\x00\x01\x02 garbage",
        '{"events": []}',
        "<html><body>502 Bad Gateway</body></html>",
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n",
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nEND:VCALENDAR\r\n",
        "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20260310T100000Z\r\nEND:VEVENT\r\n",
        vcal("UID:x\nDTSTART:2026XX10T100000Z"),
        vcal("UID:x\nDTSTART:20260310T100000Z\nRRULE:FREQ=SOMETIMES"),
        vcal("UID:x\nDTSTART:20260310T100000Z\nRRULE:FREQ=DAILY;BYWEEKNO=3"),
        vcal("UID:x\nDTSTART:20260310T100000Z\nEXDATE:yesterday"),
    ],
)
def test_garbage_raises_icalerror(text: str) -> None:
    with pytest.raises(ICalError) as info:
        expand(text)
    message = str(info.value)
    assert message
    if text.strip():
        assert text.strip() not in message


def test_icalerror_is_a_value_error() -> None:
    assert issubclass(ICalError, ValueError)
