"""The Ray launcher: ``ablate launch STUDY_FILE --ray address=auto,workers=4,gpus_per_worker=1``.

Each worker is a detached, named Ray actor that starts one ``python -m ablate worker`` process
and exits when that process ends. A process of its own, not ``run_worker`` inside the actor:
the worker keeps its own signal handling (SIGTERM hands its trial back, as on any machine), it
sees the ``CUDA_VISIBLE_DEVICES`` Ray chose for the actor before torch is first imported, and
Ray's worker process stays small and responsive to :meth:`RayLauncher.cancel`.

The actors are detached so that ``ablate launch`` returns at once and the study outlives it;
they are named ``ablate-<study>-<k>-<token>`` in a namespace (``ablate`` by default), and the
ids recorded for them are ``<namespace>/<name>@<address>``, so that cancelling or listing them
needs nothing but the ids. A Ray node that dies takes its actor and that actor's worker with
it: the trial's lease runs out and another worker resumes it from its checkpoint (the claim
protocol, nothing Ray-specific); Ray restarts the actor elsewhere when the cluster has room,
which keeps ``workers`` workers running.

Ray is imported inside the methods only: ``import ablate`` and ``ablate launch --slurm`` never
import it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ablate.errors import LaunchError
from ablate.run._launch import Launcher, LaunchRequest, register_launcher

DEFAULT_NAMESPACE = "ablate"
# How long an address may take to accept a TCP connection before it counts as not answering:
# ray.init itself waits minutes for a GCS that is not there.
PROBE_TIMEOUT_S = 3.0
# How long cancel waits for a signalled worker to hand its trial back before killing it.
HAND_BACK_S = 60.0


@dataclass(frozen=True)
class RayWorkerId:
    """One recorded id: ``<namespace>/<actor name>@<host:port>``."""

    namespace: str
    name: str
    address: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}@{self.address}"

    @classmethod
    def parse(cls, text: str) -> RayWorkerId:
        head, sep, address = text.rpartition("@")
        namespace, slash, name = head.partition("/")
        if not sep or not slash or not namespace or not name or not address:
            raise LaunchError(f"{text!r} is not a Ray worker id (<namespace>/<name>@<address>)")
        return cls(namespace, name, address)


@dataclass(frozen=True)
class _Options:
    address: str | None
    workers: int | None
    gpus_per_worker: float | None
    cpus_per_worker: float
    namespace: str


def _number(options: Mapping[str, str], key: str, *, integer: bool, minimum: float) -> float | None:
    text = options.get(key)
    if text is None or text == "":
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        kind = "a whole number" if integer else "a number"
        raise LaunchError(f"--ray {key}={text}: expected {kind}") from None
    if not math.isfinite(value) or value < minimum:
        raise LaunchError(f"--ray {key}={text}: must be at least {minimum:g}")
    return value


def _options(options: Mapping[str, str]) -> _Options:
    workers = _number(options, "workers", integer=True, minimum=1)
    namespace = options.get("namespace") or DEFAULT_NAMESPACE
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", namespace):
        raise LaunchError(f"--ray namespace={namespace}: letters, digits, '_', '.' and '-' only")
    return _Options(
        address=options.get("address") or None,
        workers=int(workers) if workers is not None else None,
        gpus_per_worker=_number(options, "gpus_per_worker", integer=False, minimum=0),
        cpus_per_worker=_number(options, "cpus_per_worker", integer=False, minimum=0.01) or 1.0,
        namespace=namespace,
    )


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise LaunchError("--ray needs Ray on this machine and the cluster's: pip install 'ablate[ray]'") from None
    return ray


def _host_port(address: str) -> tuple[str, int]:
    text = address.removeprefix("ray://")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise LaunchError(f"Ray address {address!r} is not HOST:PORT (or auto)")
    return host.strip("[]"), int(port)


def _refused(host: str, port: int) -> str | None:
    """Why ``host:port`` accepts no TCP connection within the probe's time (None: it does)."""
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as e:
        return "timed out" if isinstance(e, TimeoutError) else (e.strerror or str(e))
    return None


def _probe(address: str, *, how: str = "") -> None:
    """Fail in seconds when nothing listens at ``address`` (ray.init would wait minutes)."""
    reason = _refused(*_host_port(address))
    if reason is not None:
        raise LaunchError(
            f"the Ray cluster at {address}{how} does not answer ({reason}); start it "
            "(ray start --head) or give its address: --ray address=HOST:PORT"
        )


def _answers(address: str) -> bool:
    try:
        _probe(address)
    except LaunchError:
        return False
    return True


def _existing_address(address: str | None) -> str | None:
    """The cluster an address means: itself, or for ``auto`` and for none $RAY_ADDRESS or the
    cluster `ray start` last started on this machine (None when there is none)."""
    if address is not None and address != "auto":
        return address
    _import_ray()
    from ray._private.services import get_ray_address_from_environment

    try:
        # Ray's own lookup, the one ray.init(address="auto") uses.
        found = get_ray_address_from_environment(address, None)  # type: ignore[arg-type]  # None: look it up
    except ConnectionError:
        found = None
    if found is None and address == "auto":
        raise LaunchError(
            "--ray address=auto: no Ray cluster found on this machine ($RAY_ADDRESS is unset and "
            "`ray start` started none); start one (ray start --head) or give address=HOST:PORT"
        )
    return str(found) if found else None


def _default_address() -> str | None:
    """Without ``address=``: $RAY_ADDRESS, else the cluster `ray start` last started here if it
    still answers (one ended without `ray stop` leaves its address behind), else None: start one."""
    found = _existing_address(None)
    if found is None or os.environ.get("RAY_ADDRESS") or _answers(found):
        return found
    return None


@contextlib.contextmanager
def _connected(address: str, namespace: str) -> Iterator[Any]:
    """Ray, connected to the cluster at ``address`` (probed first) for the block."""
    _probe(address)
    ray = _import_ray()
    ray.init(
        address=address, namespace=namespace, logging_level=logging.WARNING, log_to_driver=False,
        ignore_reinit_error=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()


def _start_local_cluster() -> str:
    """Start a Ray head node on this machine that outlives this process; return its address."""
    # A free port, not Ray's default 6379: that is Redis's too, and often taken.
    with socket.socket() as s:
        s.bind(("", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}",
           "--include-dashboard=false", "--disable-usage-stats"]
    # A session of its own: the cluster outlives this command and the terminal it ran in.
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False, start_new_session=True)
    address = _existing_address(None)
    if proc.returncode != 0 or address is None:
        lines = (proc.stderr + proc.stdout).strip().splitlines() or ["no output"]
        why = next((ln for ln in reversed(lines) if "Error" in ln), lines[-1]).strip()
        raise LaunchError(f"could not start a local Ray cluster (ray start --head --port={port}): {why}")
    print(f"started a local Ray cluster at {address} (`ray stop` ends it)", flush=True)
    return address


def _reach(host: str, port: int) -> tuple[str, str | None]:
    """On a node: its address, and why ``host:port`` does not accept a connection (None: it does)."""
    import ray

    return ray.util.get_node_ip_address(), _refused(host, port)


def _check_database_reachable(ray: Any, db_url: str) -> None:
    """Every node of the cluster reaches the database server, asked from each node before any
    worker starts: a URL that works here (``localhost``, a private name) may not work there."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from ablate.store import mask_url, resolve_url

    url = resolve_url(db_url)
    if url.get_backend_name() != "postgresql":  # SQLite: a file, on one machine (ablate launch says so)
        return
    host, port = url.host or "localhost", int(url.port or 5432)
    probe = ray.remote(num_cpus=0)(_reach)
    nodes = [n["NodeID"] for n in ray.nodes() if n.get("Alive")]
    refs = [
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(host, port)
        for node in nodes
    ]
    for node, why in ray.get(refs, timeout=120):
        if why is not None:
            raise LaunchError(
                f"the database {mask_url(db_url)} does not answer from the Ray node {node} ({why}); "
                "give a URL every node can reach (not localhost)"
            )


def _nodes_resources(ray: Any) -> list[dict[str, float]]:
    return [dict(n.get("Resources", {})) for n in ray.nodes() if n.get("Alive")]


def _fit(opts: _Options, nodes: list[dict[str, float]]) -> tuple[float, int]:
    """GPUs per worker (default one when the cluster has GPUs) and workers (default as many as
    the cluster holds at once); refuse what no node can hold."""
    gpus = opts.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if any(n.get("GPU", 0) for n in nodes) else 0.0
    for what, need in (("GPU", gpus), ("CPU", opts.cpus_per_worker)):
        most = max((n.get(what, 0.0) for n in nodes), default=0.0)
        if need > most:
            key = "gpus_per_worker" if what == "GPU" else "cpus_per_worker"
            raise LaunchError(
                f"--ray {key}={need:g}: no node of the Ray cluster has {need:g} {what}(s) "
                f"(the largest has {most:g}); lower {key}"
            )
    workers = opts.workers
    if workers is None:
        fits = [
            min(n.get("CPU", 0.0) // opts.cpus_per_worker, n.get("GPU", 0.0) // gpus if gpus else math.inf)
            for n in nodes
        ]
        workers = max(1, int(sum(fits)))
    return gpus, workers


def _actor_name(study: str, k: int, token: str) -> str:
    # Ray names are free text; the study's name is kept readable in `ray list actors`.
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", study)[:60]
    return f"ablate-{safe}-{k}-{token}"


def _die_with_parent() -> None:
    """In the worker process, before exec: SIGKILL when the actor that started it dies (Linux),
    so that a killed actor never leaves a worker training a trial nobody can cancel."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class _WorkerActor:
    """The body of one Ray actor: one ``ablate worker`` process, watched."""

    def __init__(self, cmd: list[str], env: Mapping[str, str], no_gpu: bool) -> None:
        full = {**os.environ, **env}
        if no_gpu:  # Ray leaves the variable alone for actors without GPUs: hide them
            full["CUDA_VISIBLE_DEVICES"] = ""
        self._stopping = False
        self._proc = subprocess.Popen(cmd, env=full, preexec_fn=_die_with_parent)
        threading.Thread(target=self._watch, daemon=True, name="ablate-worker-watch").start()

    def _watch(self) -> None:
        self._proc.wait()
        if not self._stopping:
            # Done (or failed): free the actor's CPUs and GPUs. An intended end, not a crash,
            # so Ray does not restart it.
            import ray

            ray.kill(ray.get_runtime_context().current_actor, no_restart=True)

    def pids(self) -> tuple[int, int]:
        """This actor's process and its worker process."""
        return os.getpid(), self._proc.pid

    def stop(self, timeout_s: float) -> int | None:
        """SIGTERM the worker (it hands its trial back), wait, then SIGKILL; its exit code."""
        self._stopping = True
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        return self._proc.returncode


def _handle(ray: Any, worker: RayWorkerId) -> Any | None:
    """The actor's handle; None once it is gone (or going: see below)."""
    for attempt in range(3):
        try:
            return ray.get_actor(worker.name, namespace=worker.namespace)
        except ValueError:  # Ray's answer for a name that is not (or no longer) alive
            return None
        except AssertionError:
            # Ray's race between a name lookup and the actor's teardown (ray-project/ray#41324):
            # the name still answers but its class is already gone ("Expected str or bytes, got
            # NoneType"). Asked again it answers for real; a dying actor's name soon stops.
            if attempt < 2:
                time.sleep(0.2)
    return None


def _by_address(ids: list[str]) -> dict[str, list[RayWorkerId]]:
    groups: dict[str, list[RayWorkerId]] = {}
    for text in ids:
        worker = RayWorkerId.parse(text)
        groups.setdefault(worker.address, []).append(worker)
    return groups


def ray_alive(ids: list[str]) -> list[str]:
    """The ids among ``ids`` whose actors are alive (running or restarting); a cluster that no
    longer answers has none alive."""
    alive: list[str] = []
    for address, workers in _by_address(ids).items():
        if _answers(address):
            with _connected(address, workers[0].namespace) as ray:
                alive += [str(w) for w in workers if _handle(ray, w) is not None]
    return alive


def ray_worker_pids(ids: list[str]) -> dict[str, tuple[int, int]]:
    """For each live id: the actor's process id and its ``ablate worker`` process id (on the
    actor's node); the worker's id is the ``-<pid>`` that ends its name in ``ablate status``."""
    out: dict[str, tuple[int, int]] = {}
    for address, workers in _by_address(ids).items():
        with _connected(address, workers[0].namespace) as ray:
            for w in workers:
                handle = _handle(ray, w)
                if handle is not None:
                    with contextlib.suppress(ray.exceptions.RayError):  # it died, or waits for room
                        pid, child = ray.get(handle.pids.remote(), timeout=30)
                        out[str(w)] = (int(pid), int(child))
    return out


@register_launcher
class RayLauncher(Launcher):
    name = "ray"
    keys: ClassVar[Mapping[str, str]] = {
        "address": "the Ray cluster: HOST:PORT of its head, or auto ($RAY_ADDRESS, else the "
        "one `ray start` started here); default: that one, else a new local cluster",
        "workers": "how many workers (Ray actors); default: as many as the cluster holds at once",
        "gpus_per_worker": "GPUs each worker holds (default 1 when the cluster has GPUs, else 0)",
        "cpus_per_worker": "CPUs each worker holds, also its torch threads (default 1)",
        "namespace": f"Ray namespace of the actors (default {DEFAULT_NAMESPACE})",
    }

    def parse_options(self, text: str) -> dict[str, str]:
        options = super().parse_options(text)
        _options(options)  # every value checked now: a typo is one line before the database is asked
        return options

    def check(self, options: Mapping[str, str]) -> None:
        opts = _options(options)
        address = _existing_address(opts.address) if opts.address else _default_address()
        if address is None:  # submit starts a local cluster: nothing to ask yet
            return
        how = "" if address == opts.address else (
            " (from $RAY_ADDRESS)" if os.environ.get("RAY_ADDRESS") else " (the one `ray start` last started here)"
        )
        _probe(address, how=how)
        with _connected(address, opts.namespace) as ray:
            _fit(opts, _nodes_resources(ray))

    def submit(self, request: LaunchRequest, options: Mapping[str, str]) -> list[str]:
        opts = _options(options)
        address = (_existing_address(opts.address) if opts.address else _default_address()) or _start_local_cluster()
        request_abs = _absolute(request)
        token = secrets.token_hex(3)
        ids: list[str] = []
        with _connected(address, opts.namespace) as ray:
            gpus, workers = _fit(opts, _nodes_resources(ray))
            _check_database_reachable(ray, request.db_url)
            actor_class = ray.remote(_WorkerActor)
            for k in range(workers):
                worker = RayWorkerId(opts.namespace, _actor_name(request.study, k, token), address)
                actor_class.options(
                    name=worker.name, namespace=opts.namespace, lifetime="detached",
                    num_cpus=opts.cpus_per_worker, num_gpus=gpus,
                    # A dead node's actor is started again elsewhere; its new worker (or any
                    # other) resumes the dead one's trial once the lease runs out.
                    max_restarts=-1,
                ).remote(
                    request_abs.worker_command(),
                    request_abs.worker_env(f"ray-{worker}", max(1, int(opts.cpus_per_worker))),
                    no_gpu=gpus == 0,
                )
                ids.append(str(worker))
            # Registered with the cluster before this driver disconnects (creation is queued
            # until resources are free, and goes on without the driver: the actors are detached).
            for text in ids:
                ray.get_actor(RayWorkerId.parse(text).name, namespace=opts.namespace)
        return ids

    def job_id(self, ids: list[str]) -> str:
        """The launch as one name, its actors' names without their index:
        ``ablate/ablate-<study>-<token>@<address>`` (the ids themselves list every actor)."""
        first = RayWorkerId.parse(ids[0])
        prefix, _k, token = first.name.rsplit("-", 2)
        return str(RayWorkerId(first.namespace, f"{prefix}-{token}", first.address))

    def cancel(self, ids: list[str], options: Mapping[str, str]) -> None:
        for address, workers in _by_address(ids).items():
            if not _answers(address):  # the cluster is gone, and its actors with it
                continue
            with _connected(address, workers[0].namespace) as ray:
                handles = [h for h in (_handle(ray, w) for w in workers) if h is not None]
                if not handles:
                    continue
                # An actor still waiting for a free CPU or GPU has no worker to stop (asking it
                # would wait for its creation): it is killed first, before the others free the
                # room it waits for and it starts a worker.
                probes = {h.__ray_ready__.remote(): h for h in handles}
                ready, pending = ray.wait(list(probes), num_returns=len(probes), timeout=3)
                for ref in pending:
                    _kill(ray, probes[ref])
                # Every worker signalled at once, then waited for: each hands its trial back.
                stops = [probes[ref].stop.remote(HAND_BACK_S) for ref in ready]
                for ref in stops:
                    with contextlib.suppress(ray.exceptions.RayError):
                        ray.get(ref, timeout=HAND_BACK_S + 30)
                for ref in ready:
                    _kill(ray, probes[ref])


def _kill(ray: Any, handle: Any) -> None:
    with contextlib.suppress(ray.exceptions.RayError, ValueError):
        ray.kill(handle, no_restart=True)


def _absolute(request: LaunchRequest) -> LaunchRequest:
    """The paths as every node's worker must see them: absolute (a worker's working folder is
    Ray's, not the one `ablate launch` ran in)."""
    import dataclasses

    return dataclasses.replace(
        request, study_file=Path(request.study_file).resolve(), runs_dir=Path(request.runs_dir).resolve()
    )
