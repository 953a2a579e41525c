"""Herald's shared building blocks: domain model, events, settings and store adapters.

Nothing in this package imports from ``services``.
"""

__version__ = "0.1.0"
