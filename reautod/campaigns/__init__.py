"""Campaign logic: calling windows, lead import, do-not-call, pacing and retries, the dialer."""
