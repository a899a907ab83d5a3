"""``python -m rbp``: the rbp command."""

from rbp.cli import main

raise SystemExit(main())
