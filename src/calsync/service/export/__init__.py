"""Export: the platform's sessions written into external calendars."""
