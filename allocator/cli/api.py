"""``allocator api``: serve the HTTP API (:mod:`allocator.api`) with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from allocator.cli.common import CliError, err, planner_errors

API_EXIT_CODES_HELP = (
    "Exit codes: 0 stopped (Ctrl-C or SIGTERM; the embedded database it started stops too); "
    "2 no ALLOCATOR_API_KEY configured, a key shorter than 16 characters, or bad flags "
    "(a --host that is no address of this machine, a --port in use)."
)

#: uvicorn's exit code when the server could not start (it could not listen).
_UVICORN_STARTUP_FAILURE = 3


def listen_problem(host: str, port: int) -> str | None:
    """Why the API cannot listen on ``host``:``port`` (said before uvicorn tries, whose own
    exit code 3 would read as "infeasible"); None when it can."""
    import socket

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        return f"--host {host!r} is not an address this machine can listen on ({getattr(exc, 'strerror', None) or exc})."
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            return (
                f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                "Another server may be using that port: give another with --port."
            )
    return None


def register(app: typer.Typer) -> None:
    """Add ``api`` to ``app``."""

    @app.command("api", epilog=API_EXIT_CODES_HELP)
    @planner_errors
    def api_command(
        host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    ) -> None:
        """Serve the HTTP API (health, solve a run, process pending runs; docs at /docs)."""
        from allocator import service
        from allocator.api import api_key_problem
        from allocator.config import get_settings

        settings = get_settings()
        problem = api_key_problem(settings.api_key.get_secret_value() if settings.api_key else None)
        if problem:
            raise CliError(problem)
        if not 0 < port < 65536:
            raise CliError(f"--port must be between 1 and 65535 (got {port})")
        problem = listen_problem(host, port)
        if problem:
            raise CliError(problem)
        import uvicorn

        from allocator.api import create_app

        # uvicorn stops gracefully on SIGTERM, then raises the signal again: end with exit
        # handlers (they stop the embedded server), not by SIGTERM's default action.
        service.stop_on_sigterm(0)
        err(f"Serving the allocator API on http://{host}:{port} (docs at /docs).")
        try:
            uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
        except SystemExit as exc:
            if exc.code == _UVICORN_STARTUP_FAILURE:  # taken between the check and the start
                raise CliError(f"The API could not listen on {host}:{port} (uvicorn's message is above).") from None
            raise
