"""``python -m heimdall.cli``."""

from heimdall.cli import main

raise SystemExit(main())
