"""Pieces of `benchmarks/run_all.py`: each module measures one part and returns plain rows.

Only the standard library and qwenfit are needed, except `plots` (matplotlib, imported lazily)
and the peer parts, which call the peer venvs built by `benchmarks/peers/setup.sh`.
"""
