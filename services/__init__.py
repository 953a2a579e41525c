"""Herald's services: scheduler, publisher, results, api, and the `herald` CLI."""
