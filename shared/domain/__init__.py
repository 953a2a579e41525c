"""The domain model: jobs and their state machine, outcomes, connections. No I/O here."""
