"""`python -m mailkeep` runs the command line."""

from mailkeep.cli import main

main()
