"""iCalendar handling: turning CalDAV resources into busy instances."""
