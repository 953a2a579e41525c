"""Where Herald finds its files: what it reads at run time ships inside the installed package;
the checkout (for the local stack, the benchmarks and their results) is found from it.

`PACKAGE` is the `herald` package folder, never resolved through its links: in a checkout
`herald/schemas` is the top-level `schemas/`; in an installed wheel it is a copy, and
`ROOT` is the site-packages folder, where Herald writes nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from herald.shared.errors import ConfigError

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


def default_stack_dir() -> Path:
    """The local folder `herald stack` and `herald run` keep their files in: `.stack/` in a
    checkout; installed from a wheel, `$XDG_STATE_HOME/herald` (`~/.local/state/herald`)."""
    if in_checkout():
        return ROOT / ".stack"
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "herald"


def relative_base() -> Path:
    """What a relative HERALD_STACK_DIR counts from: the checkout's root (never the working
    directory); installed from a wheel, where there is no checkout, the working directory."""
    return ROOT if in_checkout() else Path.cwd()


def checkout_tools(command: str) -> None:
    """Make the checkout's developer tools importable (`stack`, `bench`): they are not part
    of the installed package, and exist only in a checkout."""
    if not in_checkout():
        raise ConfigError(
            f"`herald {command}` needs a checkout of Herald (git clone, then make run):"
            " the installed package has no local stack or benchmarks"
        )
    for folder in (str(LOCAL_STACK_DIR), str(ROOT)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
