"""The composition root: the `packproof` command, its configuration, the services it runs and
the one-process runner that wires every stage together.

Nothing imports this package; it imports whatever it composes (tests/test_layout.py).
"""
