"""``python -m mailbridge.cli``: the command line."""

from mailbridge.cli.main import main

raise SystemExit(main())
