"""The ``vigie`` command line: ``main`` is the entry point (``vigie.cli.main``).

``main.py`` is the table of contents: it adds every command group. One module per group
(``serve``, ``replay``, ``consumers``, ``simulate``, ``data``, ``suggestions``, ``tune``,
``policies``, ``top``, ``audit``) parses, calls and prints; ``common`` holds what they share,
``client`` the admin service's client, ``fleet`` the merge of several sidecars, ``demo`` the
live demo.
"""

from vigie.cli.main import main

__all__ = ["main"]
