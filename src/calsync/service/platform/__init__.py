"""The platform's own objects: schedules and their sessions (bookings, classes)."""
