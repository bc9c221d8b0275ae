"""`python -m qwenfit`."""

from qwenfit.console import run

run()
