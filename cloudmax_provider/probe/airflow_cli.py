"""``airflow cloudmax probe``: the probe as an Airflow CLI command, where Airflow lets a provider add one
(3.3+ reads the ``cli`` list of ``get_provider_info``; older versions ignore it: use
``python -m cloudmax_provider.probe``, which takes the same arguments).

Example::

    airflow cloudmax probe --conn-id cloudmax_default --launch-id 1234 --record ./capture
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from cloudmax_provider.probe.cli import ARGUMENTS, DESCRIPTION, argument_error, run_from_args

if TYPE_CHECKING:
    from airflow.cli.cli_config import GroupCommand

__all__ = ["get_cli_commands", "probe_command"]


def probe_command(args: argparse.Namespace) -> None:
    """What ``airflow cloudmax probe`` runs: the probe, exiting with its status (0: everything handled)."""
    if error := argument_error(args):
        sys.exit(f"airflow cloudmax probe: error: {error}")
    sys.exit(run_from_args(args))


def get_cli_commands() -> list[GroupCommand]:
    """The ``cloudmax`` command group, with ``probe``, for Airflow's CLI."""
    from airflow.cli.cli_config import ActionCommand, Arg, GroupCommand

    probe = ActionCommand(
        name="probe",
        help=DESCRIPTION,
        func=probe_command,
        args=[Arg(flags, **kwargs) for flags, kwargs in ARGUMENTS],
        description=DESCRIPTION + " The same as python -m cloudmax_provider.probe.",
    )
    return [GroupCommand(name="cloudmax", help="Cloudmax provider commands", subcommands=[probe])]
