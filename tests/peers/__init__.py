"""Real CalDAV servers (Radicale, Xandikos) run as subprocesses for integration tests."""
