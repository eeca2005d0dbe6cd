"""Exchange trading days and listed expirations (XNYS calendar from ``exchange_calendars``)."""
from __future__ import annotations

import datetime as dt
from functools import lru_cache

import pandas as pd

CALENDAR = "XNYS"


@lru_cache(maxsize=4)
def _calendar(name: str = CALENDAR):
    import exchange_calendars as xcals

    return xcals.get_calendar(name, start="1990-01-01", end="2040-12-31")


@lru_cache(maxsize=1)
def session_bounds() -> tuple[dt.date, dt.date]:
    """The first and last session the calendar covers."""
    calendar = _calendar()
    return calendar.first_session.date(), calendar.last_session.date()


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """NYSE sessions from start to end inclusive (holidays and weekends excluded)."""
    sessions = _calendar().sessions_in_range(pd.Timestamp(start), pd.Timestamp(end))
    return [d.date() for d in sessions]


@lru_cache(maxsize=65536)
def previous_trading_day(day: dt.date) -> dt.date:
    """The session on or before `day` (an expiration on a holiday moves to the prior session).
    Cached: listing expirations for every day of a long synthetic market asks for the same few
    Fridays again and again."""
    return _calendar().date_to_session(pd.Timestamp(day), direction="previous").date()


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


def listed_expirations(
    today: dt.date, weekly_horizon_days: int = 63, horizon_days: int = 400
) -> list[dt.date]:
    """Expirations listed on `today`, following the usual equity/ETF listing pattern.

    Weekly Friday expirations for the next `weekly_horizon_days`, and monthly third-Friday
    expirations out to `horizon_days` (over a year by default). An expiration falling on an
    exchange holiday moves to the previous trading day (e.g. Good Friday). Expirations on or
    after `today` only.
    """
    out: set[dt.date] = set()
    end = today + dt.timedelta(days=horizon_days)
    friday = today + dt.timedelta(days=(4 - today.weekday()) % 7)
    while friday <= today + dt.timedelta(days=weekly_horizon_days):
        out.add(friday)
        friday += dt.timedelta(days=7)
    y, m = today.year, today.month
    while True:
        tf = third_friday(y, m)
        if tf > end:
            break
        out.add(tf)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return sorted(e for e in {previous_trading_day(d) for d in out} if e >= today)
