"""`python -m herald ...` is the `herald` command."""

from herald.services.cli import main

raise SystemExit(main())
