"""Where Herald finds its files: what it reads at run time ships inside the installed package;
the checkout (for the local stack, the benchmarks and their results) is found from it.

`PACKAGE` is the `herald` package folder, never resolved through its links: in a checkout
`herald/schemas` is the top-level `schemas/`; in an installed wheel it is a copy.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[2]  # herald/ (this file is herald/shared/infra/paths.py)
SCHEMAS_DIR = PACKAGE / "schemas"
TOPICS_FILE = PACKAGE / "topics.toml"
MIGRATIONS_DIR = PACKAGE / "shared" / "infra" / "db" / "migrations"

# The checkout, when Herald runs from one (`make`, tests, `herald stack`, `herald bench`).
ROOT = PACKAGE.parent
DEPLOY_DIR = ROOT / "deploy"
LOCAL_STACK_DIR = DEPLOY_DIR / "local"  # the local stack's tooling: `import stack`


def in_checkout() -> bool:
    return (ROOT / "pyproject.toml").is_file() and (LOCAL_STACK_DIR / "stack").is_dir()


def checkout_tools() -> None:
    """Make the checkout's developer tools importable (`stack`, `bench`): they are not part
    of the installed package, and exist only in a checkout."""
    if not in_checkout():
        raise RuntimeError(
            "`herald stack` and `herald bench` run from a checkout of Herald (make run)"
        )
    for folder in (str(LOCAL_STACK_DIR), str(ROOT)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
