"""``python -m reconciler`` is the ``incus-images`` command."""

from reconciler.cli import main

raise SystemExit(main())
