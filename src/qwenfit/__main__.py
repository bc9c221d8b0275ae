"""`python -m qwenfit`."""

from qwenfit.cli import run

run()
