"""`make bench`: the reference solutions against the straightforward formulation (see bench.py)."""
