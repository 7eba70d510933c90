"""``python -m lvtime``: the same command line as ``lvtime``."""

from lvtime.cli import main

main()
