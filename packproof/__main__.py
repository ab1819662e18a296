"""`python -m packproof` is the `packproof` command."""

from packproof.cli import main

main()
