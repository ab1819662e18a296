"""`python -m packproof` is the `packproof` command."""

from packproof.app.cli import main

main()
