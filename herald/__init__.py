"""Herald: an event-driven pipeline that publishes scheduled social-media posts.

The installed package. Its parts live in the checkout's top-level folders and are installed
under this name: `herald.shared` (``shared/``: the domain, the wire formats, the stores and
the process runtime every service builds on) and `herald.services` (``services/``: the
scheduler, publisher, results and api processes, and the ``herald`` command). What the code
reads at run time ships with it: ``herald/schemas`` (``schemas/``), ``herald/topics.toml``
(``deploy/topics.toml``), the migrations and the ops page. The checkout's developer tools
(the local stack, the benchmarks) are not installed.
"""

from herald.shared import __version__

__all__ = ["__version__"]
