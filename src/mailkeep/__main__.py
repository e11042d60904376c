"""`python -m mailkeep` runs the command line."""

from mailkeep.cli.entry import run

run()
