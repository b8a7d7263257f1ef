"""The benchmark behind ``python benchmarks/compare.py``: what pytest-sessionmaker costs a user.

One module per concern: ``settings`` (what was asked), ``environment`` (the virtualenv holding
the peers), ``strategies`` (the registry of what is compared), ``suite`` (the generated test
suites), ``databases`` (the benchmark's databases on the server), ``running`` (one timed pytest
process), and one module per measurement: ``per_test``, ``first_test``, ``startup``,
``profiling``; ``report`` prints them and ``cli`` ties it together.
"""
