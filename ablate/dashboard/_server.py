"""`ablate dashboard`: optuna-dashboard served over :class:`AblateStorage`.

The server is the standard library's WSGI server, one request at a time as optuna-dashboard's own
``run_server`` does (a read-only SQLite store's connections belong to the thread that opened
them); each request reads the database afresh through the adapter.
The port is bound before anything is printed, so a port in use is one clear error, and binding
is to 127.0.0.1 unless another host is asked for: the dashboard has no login.
"""

from __future__ import annotations

import errno
import json
import logging
import socket
import sys
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ablate.dashboard._storage import AblateStorage, Database
from ablate.errors import UserInputError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (the page polls every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def bind_dashboard(
    storage: AblateStorage, *, host: str = "127.0.0.1", port: int = 8080
) -> WSGIServer:
    """optuna-dashboard's app over ``storage``, bound to ``host:port`` and ready to serve.

    Raises UserInputError when the port is taken or the host cannot be bound.
    """
    import optuna_dashboard

    app = _read_only(optuna_dashboard.wsgi(storage))
    try:
        return make_server(host, port, app, handler_class=_QuietHandler)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise UserInputError(
                f"--port {port}: already in use on {host}; stop what listens there or pick "
                "another port with --port"
            ) from None
        if e.errno == errno.EACCES:
            raise UserInputError(
                f"--port {port}: not allowed on {host} (ports below 1024 need root); pick "
                "another with --port"
            ) from None
        raise UserInputError(f"--host {host} --port {port}: cannot listen there ({e.strerror})") from None
    except (socket.gaierror, UnicodeError) as e:
        raise UserInputError(f"--host {host}: not a host name or address of this machine ({e})") from None


READ_ONLY_REASON = (
    "ablate dashboard is read-only: studies and trials are written by `ablate run` and "
    "`ablate worker` only (notes are kept in memory until the dashboard stops)"
)


def _read_only(app: WSGIApplication) -> WSGIApplication:
    """``app`` refusing every request that would write, but for notes, with a reason the page
    shows (the adapter would refuse them too, as an internal server error)."""

    def refusing(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        path = str(environ.get("PATH_INFO", "")).rstrip("/")
        if method in ("GET", "HEAD", "OPTIONS") or (method == "PUT" and path.endswith("/note")):
            return app(environ, start_response)
        body = json.dumps({"reason": READ_ONLY_REASON}).encode()
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return refusing


def serve_dashboard(
    db: Database = None,
    *,
    study: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8080,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve optuna-dashboard over ablate's database ``db`` until interrupted.

    ``study`` limits the dashboard to that study (StudyError when the database has none of
    that name). ``ready`` is called with the page's URL once the port is bound.
    """
    storage = AblateStorage(db, studies=None if study is None else [study])
    try:
        if study is not None:
            storage.store.load_study(study)
        server = bind_dashboard(storage, host=host, port=port)
        # optuna-dashboard logs a failed request (a refused write, among them) on its logger.
        logging.getLogger("optuna_dashboard").addHandler(_stderr_handler())
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{server.server_port}/dashboard"
        if study is not None:
            url += f"/studies/{storage.get_study_id_from_name(study)}"
        if ready is not None:
            ready(url)
        try:
            server.serve_forever(poll_interval=0.5)
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    finally:
        storage.close()


def _stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dashboard: %(message)s"))
    return handler
