"""calsync: connects booking-platform schedules to external calendars."""

__version__ = "0.1.0"
