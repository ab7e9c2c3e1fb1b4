"""``python -m reconciler`` and the ``incus-images`` script.

The signal handlers go in before anything heavy is imported (click, pydantic,
requests take a while): SIGINT or SIGTERM during start-up ends with the same one
line and exit status as later (130, 143), never a traceback.
"""

from __future__ import annotations

import sys

from reconciler import interrupts
from reconciler.errors import Interrupted


def entry() -> int:
    """Install the signal handlers, import the CLI, run it; return the exit status."""
    interrupts.install()
    try:
        from reconciler.cli import main

        return main()
    except (Interrupted, KeyboardInterrupt) as exc:  # during the imports above
        stop = exc if isinstance(exc, Interrupted) else Interrupted(2)
        sys.stderr.write(f"incus-images: {stop}\n")
        return stop.exit_code
    finally:
        interrupts.finished()


def script() -> None:
    """The ``incus-images`` console script."""
    raise SystemExit(entry())


if __name__ == "__main__":
    script()
