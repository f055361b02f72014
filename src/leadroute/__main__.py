"""``python -m leadroute`` runs the CLI."""

from leadroute.cli import main

raise SystemExit(main())
