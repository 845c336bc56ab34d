"""Import: the sync step, the worker that runs it, leases and push notifications."""
