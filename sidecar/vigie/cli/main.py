"""The ``vigie`` command and its table of contents: every command group, added in one place.

Each command module parses, calls and prints; what they share is in ``vigie.cli.common``. No
command module imports another one or this one (the import-linter contract "The CLI" in
``pyproject.toml``).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from vigie import __version__
from vigie.cli import (
    audit,
    clients,
    consumers,
    data,
    inventory,
    policies,
    replay,
    serve,
    simulate,
    suggestions,
    top,
    tune,
)
from vigie.cli.common import err_console
from vigie.errors import VigieError


class VigieGroup(click.Group):
    """Turns vigie's own errors into a one-line message and their exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except VigieError as exc:
            err_console.print(f"[bold red]vigie:[/] {exc}", highlight=False, soft_wrap=True)
            sys.exit(exc.exit_code)


@click.group(cls=VigieGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vigie")
def main() -> None:
    """vigie: per-consumer behaviour of a WSO2 API Manager platform.

    \b
    Start here:
      vigie demo                     simulated gateways, classified live
      vigie replay apim_metrics.log  classify the history in WSO2's analytics log
      vigie serve                    the sidecar next to a gateway
    """


# the sidecar and its configuration
main.add_command(serve.serve)
main.add_command(serve.check_config)
# history: WSO2's analytics log, classified offline
main.add_command(replay.replay)
# a running sidecar (or a fleet of them)
main.add_command(consumers.consumers)
main.add_command(consumers.status)
main.add_command(clients.clients)
main.add_command(top.top)
# simulated gateways
main.add_command(simulate.simulate)
main.add_command(simulate.demo)
# the data store: per-minute and per-day rollups
main.add_command(data.autopsy)
main.add_command(data.report)
# suggestions, directives, thresholds and WSO2 policies
main.add_command(suggestions.suggestions)
main.add_command(tune.tune)
main.add_command(policies.policies)
main.add_command(audit.audit)
# the inventory, from WSO2 itself
main.add_command(inventory.inventory)
