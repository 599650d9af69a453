"""`pik serve`: the HTTP API over the local store."""

from __future__ import annotations

import errno
import os

import click

from pik.api.server import ApiServer
from pik.cli.context import Context, pass_context


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind. Anything but loopback needs PIK_TOKEN.",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@pass_context
def serve(ctx: Context, host: str, port: int) -> None:
    """Serve the HTTP API (POST /events, GET /events/ID, /entities, /entities/E/timeline,
    /coverage, /rates) over the store until interrupted.

    The bearer token, when needed, is read from $PIK_TOKEN so it never shows in a process
    list; clients send `Authorization: Bearer <token>`.
    """
    token = os.environ.get("PIK_TOKEN") or None
    with ctx.engine(create=True) as engine:
        try:
            server = ApiServer(engine, host, port, token)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        except OSError as exc:
            raise click.ClickException(_bind_failure(host, port, exc)) from None
        bound_host, bound_port = str(server.server_address[0]), int(server.server_address[1])
        ctx.err.print(
            f"serving {ctx.store_label} on http://{bound_host}:{bound_port} "
            f"({'token required' if token else 'no token: loopback only'}); "
            "ctrl+c stops",
            highlight=False,
            markup=False,
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()


def _bind_failure(host: str, port: int, exc: OSError) -> str:
    """Why the address could not be bound, and what to do instead."""
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {port} on {host} is already in use (another `pik serve`?); "
            "stop it or choose another with --port"
        )
    if exc.errno == errno.EADDRNOTAVAIL:
        return f"{host} is not an address of this machine; choose another with --host"
    if exc.errno == errno.EACCES:
        return f"no permission to bind port {port}; choose one above 1023 with --port"
    reason = exc.strerror or str(exc)
    return f"cannot serve on {host}:{port}: {reason}"


COMMANDS = [serve]
