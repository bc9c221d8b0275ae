"""`python -m qwenfit`."""

from qwenfit.cli import main

main()
