"""`python -m packproof` is the `packproof` command.

The door of the composition root (packproof.app) that Python looks for in this package: it
stands on the root's floor, and nothing imports it (tests/test_layout.py).
"""

from packproof.app.cli import main

main()
