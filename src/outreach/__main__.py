"""``python -m outreach`` is the ``outreach`` command (editors launch it this way)."""

from outreach.cli import main

main()
