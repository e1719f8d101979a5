"""``python -m vigie.cli``: the same as the ``vigie`` command."""

from vigie.cli.main import main

main()
