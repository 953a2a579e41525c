"""The wire formats: one codec per topic, each validating against `schemas/`."""
