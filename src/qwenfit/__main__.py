"""`python -m qwenfit`."""

from qwenfit.cli.commands import main

main()
