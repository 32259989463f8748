"""The ``users`` command group: dashboard accounts."""

from __future__ import annotations

import click

from catalog_ai.cli._root import cli


@cli.group()
def users() -> None:
    """Reviewer accounts for the dashboard (see README, 'Dashboard access')."""


@users.command("hash-password")
@click.argument("name")
@click.option(
    "--stdin",
    "from_stdin",
    is_flag=True,
    help="read the password from the first line of standard input (scripts) instead of "
    "asking twice without echo",
)
@click.option("--password", hidden=True, default=None)
def users_hash_password(name: str, from_stdin: bool, password: str | None) -> None:
    """Print a NAME:HASH line (Argon2id) for CATALOG_AI_USERS or CATALOG_AI_USERS_FILE.

    The password is asked for without echo (or read with --stdin), never taken from the command
    line, where shell history and `ps` would keep it. Only the line goes to stdout (the prompts
    go to stderr), so `catalog-ai users hash-password alice >> reviewers.txt` builds a users file.
    """
    import sys

    from catalog_ai.auth import check_new_password, hash_password
    from catalog_ai.errors import ConfigError

    if password is not None:
        raise click.UsageError(
            "a password is never taken from the command line (shell history and `ps` keep it): "
            "type it at the prompt, or pipe it in with --stdin"
        )
    if ":" in name or ";" in name or not name.strip():
        raise click.BadParameter(
            "a reviewer name may not be empty or contain ':' or ';'", param_hint="NAME"
        )
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    try:
        check_new_password(password)
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="password") from None
    click.echo(f"{name}:{hash_password(password)}")
