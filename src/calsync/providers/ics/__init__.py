"""iCalendar feed subscriptions (``kind = "ics"``): import only, one calendar per feed."""

from calsync.providers.ics.adapter import IcsFeedProvider
from calsync.providers.ics.kind import KIND_SPEC

__all__ = ["KIND_SPEC", "IcsFeedProvider"]
