"""`ablate dashboard`: optuna-dashboard served over :class:`AblateStorage`.

The server is the standard library's WSGI server with a thread per connection, as
optuna-dashboard's own command runs it (one thread would let a browser's idle, pre-opened
connection stall every request). The app itself, and so every database read, runs on one
thread of its own: a read-only SQLite store's connections belong to the thread that opened them.
Each request reads the database afresh through the adapter.
The port is bound before anything is printed, so a port in use is one clear error, and binding
is to 127.0.0.1 unless another host is asked for: the dashboard has no login.
"""

from __future__ import annotations

import errno
import json
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, TypeVar
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ablate.dashboard._storage import AblateStorage, Database
from ablate.errors import UserInputError

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication

T = TypeVar("T")


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a connection left open does not keep the process alive


class _QuietHandler(WSGIRequestHandler):
    """No access log line per request (the page polls every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


def bind_dashboard(
    storage: AblateStorage,
    database_thread: ThreadPoolExecutor,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
) -> WSGIServer:
    """optuna-dashboard's app over ``storage``, bound to ``host:port`` and ready to serve;
    the app runs on ``database_thread`` (one worker), where ``storage`` was opened.

    Raises UserInputError when the port is taken or the host cannot be bound.
    """
    import optuna_dashboard

    app = _on_thread(_read_only(optuna_dashboard.wsgi(storage)), database_thread)
    try:
        return make_server(
            host, port, app, server_class=_ThreadingServer, handler_class=_QuietHandler
        )
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


def _on_thread(app: WSGIApplication, thread: ThreadPoolExecutor) -> WSGIApplication:
    """``app`` run on ``thread``, its whole response read there."""

    def call(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def respond() -> list[bytes]:
            body = app(environ, start_response)
            try:
                return list(body)
            finally:
                close = getattr(body, "close", None)
                if close is not None:
                    close()

        return thread.submit(respond).result()

    return call


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
    database_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ablate-dashboard-db")

    def on_database_thread(fn: Callable[[], T]) -> T:
        return database_thread.submit(fn).result()

    def open_storage() -> tuple[AblateStorage, int | None]:
        storage = AblateStorage(db, studies=None if study is None else [study])
        try:
            # StudyError (listing the studies there) when there is no such study.
            study_id = None if study is None else storage.store.load_study(study).study_id
        except BaseException:
            storage.close()
            raise
        return storage, study_id

    try:
        storage, study_id = on_database_thread(open_storage)
        try:
            server = bind_dashboard(storage, database_thread, host=host, port=port)
            # optuna-dashboard logs a failed request on its logger.
            logging.getLogger("optuna_dashboard").addHandler(_stderr_handler())
            shown = f"[{host}]" if ":" in host else host
            url = f"http://{shown}:{server.server_port}/dashboard"
            if study_id is not None:
                url += f"/studies/{study_id}"
            try:
                with _stopped_by_sigterm():
                    if ready is not None:
                        ready(url)
                    server.serve_forever(poll_interval=0.5)
            except KeyboardInterrupt:
                pass
            finally:
                server.server_close()
        finally:
            on_database_thread(storage.close)
    finally:
        database_thread.shutdown(wait=False, cancel_futures=True)


@contextmanager
def _stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM (a service manager, ``kill``) stops the server as Ctrl+C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stderr_handler() -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("dashboard: %(message)s"))
    return handler
