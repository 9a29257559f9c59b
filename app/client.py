"""Python client for the spikeserve API. Needs httpx and numpy, not torch.

from app.client import Client
with Client("http://127.0.0.1:8000", key="...") as client:
    job = client.submit("examples/seed.json")
    job.wait(progress=True)
    result = job.result()           # worker.simulation.results.Result, arrays as numpy
    result.layers["out"].times
    result.weights["plastic"].final  # a plastic edge's final weights (and .snapshots, .pre, .post)
    sweep = client.sweep("examples/seed.json", {"seed": [0, 1, 2]})
    print(sweep.wait(progress=True)["status"], sweep.summary())
"""

import http.client
import json
import pathlib
import select
import ssl
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from worker.simulation.errors import format_loc
from worker.simulation.results import LiveChunk, Result, write_csv

FINAL = ("succeeded", "failed", "cancelled")
MAX_WAIT_S = 30.0  # one long poll; the server allows up to 60


class SpikeserveError(Exception):
    """The API refused a call; ``status`` is the HTTP status and ``detail`` the API's explanation."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        if isinstance(detail, list):  # validation errors: one line per field
            text = "; ".join(f"{format_loc(e.get('loc', []))}: {e.get('msg')}" for e in detail)
        else:
            text = str(detail)
        super().__init__(f"HTTP {status}: {text}")


class JobFailed(SpikeserveError):
    """The job ended failed or cancelled, so it has no result."""


def _check(response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text
    raise SpikeserveError(response.status_code, detail)


class _Connections:
    """Keep-alive HTTP/1.1 connections (``http.client``) for the client's plain requests: each
    request one write and one read, without httpx's per-request machinery, which took 0.3 ms more
    per status request and 0.7 ms more per submission on a 2-core machine (a tiny job's whole
    round trip is a few milliseconds). Thread-safe: a request takes an idle connection or opens
    one. Connection failures raise httpx's ``TransportError``, as the event streams (httpx) do."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urllib.parse.urlsplit(url)
        self._https = parts.scheme == "https"
        self._address = (parts.hostname or "127.0.0.1", parts.port or (443 if self._https else 80))
        self._prefix = parts.path.rstrip("/")
        self._headers = headers
        self._timeout = timeout
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None,
        body: bytes | None,
        headers: dict[str, str],
        timeout: float | None,
    ) -> httpx.Response:
        target = self._prefix + path + ("?" + urllib.parse.urlencode(params) if params else "")
        for attempt in range(2):
            connection, reused = self._take()
            try:
                connection.timeout = timeout or self._timeout
                if connection.sock is not None:
                    connection.sock.settimeout(connection.timeout)
                connection.request(method, target, body=body, headers={**self._headers, **headers})
                response = connection.getresponse()
                content = response.read()
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                # A kept-alive connection closed by the server just as it was reused: a server
                # closes only idle connections, so the request was never read; it goes again on a
                # new one. (Not after a timeout: the server may be working on it.)
                if (
                    attempt == 0
                    and reused
                    and isinstance(error, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError))
                ):
                    continue
                raise httpx.TransportError(f"{method} {target}: {error!r}") from error
            if response.will_close:
                connection.close()
            else:
                with self._lock:
                    self._idle.append(connection)
            return httpx.Response(response.status, headers=response.getheaders(), content=content)
        raise AssertionError("unreachable")

    def _take(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection that the server has not closed meanwhile, or a new one."""
        while True:
            with self._lock:
                connection = self._idle.pop() if self._idle else None
            if connection is None:
                break
            # readable while idle: the server closed it (or broke the protocol); either way, drop it
            if connection.sock is not None and not select.select([connection.sock], [], [], 0)[0]:
                return connection, True
            connection.close()
        host, port = self._address
        if self._https:
            return http.client.HTTPSConnection(host, port, timeout=self._timeout, context=ssl.create_default_context()), False
        return http.client.HTTPConnection(host, port, timeout=self._timeout), False

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()


def _proxied(url: str) -> bool:
    """Whether the environment sends requests for ``url`` through a proxy (httpx then carries them all)."""
    parts = urllib.parse.urlsplit(url)
    return parts.scheme in urllib.request.getproxies() and not urllib.request.proxy_bypass(parts.hostname or "")


def _server_events(
    http: httpx.Client, url: str, deadline: float | None, last_id: str | None = None
) -> Iterator[tuple[str, str | None, str]]:
    """(type, id, data) of each Server-Sent Event at ``url`` until the stream ends, breaks or
    ``deadline`` passes; ``last_id`` resumes after that event."""
    # the server pings every 15 s, so a read that waits longer than 20 s means a dead stream
    read_s = 20.0 if deadline is None else max(0.1, min(20.0, deadline - time.monotonic()))
    headers = {"Last-Event-ID": last_id} if last_id else {}
    try:
        with http.stream("GET", url, timeout=httpx.Timeout(10.0, read=read_s), headers=headers) as response:
            if not response.is_success:
                response.read()
                _check(response)
            kind, event_id, data = "message", None, list[str]()
            for line in response.iter_lines():
                if not line:  # a blank line ends an event
                    if data:
                        yield kind, event_id, "\n".join(data)
                    kind, event_id, data = "message", None, []
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("id:"):
                    event_id = line[3:].strip()
                if deadline is not None and time.monotonic() > deadline:
                    return
    except httpx.TransportError:
        return


def _status_events(events: Iterator[tuple[str, str | None, str]]) -> Iterator[dict[str, Any]]:
    return (json.loads(data) for kind, _, data in events if kind == "status")


class Job:
    def __init__(self, client: "Client", job_id: str, warnings: list[str] | None = None) -> None:
        self.client = client
        self.id = job_id
        self.warnings = warnings or []  # what the server noted of the request when it was submitted

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def status(self, wait: float = 0.0) -> dict[str, Any]:
        """The job's status; with ``wait``, the server answers as soon as the job ends (at most ``wait`` s)."""
        params = {"wait": wait} if wait else None
        return _check(self.client.request("GET", f"/api/v1/jobs/{self.id}", params=params, timeout=wait + 10)).json()

    def wait(self, progress: bool = False, timeout: float | None = None, poll_s: float = 0.5) -> dict[str, Any]:
        """Blocks until the job is final and returns its status; ``progress=True`` shows a bar.

        The server answers as soon as the job ends: a long-polled status request, or with a
        progress bar the job's event stream. If a request breaks (an API restart), it retries
        after ``poll_s``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if progress:
            self._follow_with_bar(deadline)
        while True:
            remaining = MAX_WAIT_S if deadline is None else min(MAX_WAIT_S, deadline - time.monotonic())
            try:
                status = self.status(wait=max(0.0, remaining))
            except httpx.TransportError:
                status = None
                time.sleep(poll_s)
            if status is not None and status["status"] in FINAL:
                return status
            if deadline is not None and time.monotonic() >= deadline:
                state = "unknown" if status is None else status["status"]
                raise TimeoutError(f"job {self.id} is still {state} after {timeout} s")

    def _follow_with_bar(self, deadline: float | None) -> None:
        from tqdm import tqdm

        with tqdm(unit="step", leave=False) as bar:
            for event in self._events(deadline):
                bar.total = event["steps_total"]
                bar.set_description(event["status"])
                bar.update(event["steps_done"] - bar.n)
                if event["status"] in FINAL:
                    return

    def stream(self, timeout: float | None = None, poll_s: float = 0.5) -> Iterator[LiveChunk]:
        """The spikes of the layers in the request's ``record.live``, a chunk at a time as the job
        runs, until it ends: ``for chunk in job.stream(): ...``. The chunks of a run concatenate
        to its result (unless a chunk says it was thinned: ``every`` > 1). A chunk that starts
        at step 0 after others means the job runs again (its worker died): drop what came before.
        A broken connection is resumed after the last chunk received."""
        return (item for item in self.follow(timeout, poll_s) if isinstance(item, LiveChunk))

    def follow(self, timeout: float | None = None, poll_s: float = 0.5) -> Iterator[dict[str, Any] | LiveChunk]:
        """The job's status changes (dicts: ``status``, ``steps_done``, ``steps_total``) and its
        live spikes (``LiveChunk``, as ``stream`` gives them) as they happen, until it ends: the
        last item is its final status. A broken connection is resumed after the last chunk."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last_id: str | None = None
        while True:
            for kind, event_id, data in self._server_events(deadline, last_id):
                if kind == "spikes":
                    last_id = event_id
                    yield LiveChunk.from_dict(json.loads(data))
                elif kind == "status":
                    status = json.loads(data)
                    yield status
                    if status["status"] in FINAL:
                        return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} did not end within {timeout} s")
            time.sleep(poll_s)

    def _events(self, deadline: float | None) -> Iterator[dict[str, Any]]:
        """The job's status events until the stream ends, breaks or ``deadline`` passes."""
        return _status_events(self._server_events(deadline))

    def _server_events(self, deadline: float | None, last_id: str | None = None) -> Iterator[tuple[str, str | None, str]]:
        return _server_events(self.client.http, f"/api/v1/jobs/{self.id}/events", deadline, last_id)

    def result(self, format: str = "npz", wait: float = 0.0) -> Result:
        """The result decoded into numpy arrays; raises JobFailed if the job failed or was cancelled.

        With ``wait``, the server holds the request until the job ends (at most ``wait`` s), so
        ``client.submit(...).result(wait=30)`` is a whole simulation in two requests.
        """
        raw = self.result_bytes(format, wait)
        return Result.from_npz(raw) if format == "npz" else Result.from_json(raw)

    def result_bytes(self, format: str = "npz", wait: float = 0.0) -> bytes:
        """The encoded result (``format`` "npz" or "json"); ``wait`` and errors as for ``result``."""
        params: dict[str, Any] = {"format": format, **({"wait": wait} if wait else {})}
        response = self.client.request("GET", f"/api/v1/jobs/{self.id}/result", params=params, timeout=wait + 60)
        if response.status_code == 409:
            status = self.status()
            if status["status"] in ("failed", "cancelled"):
                raise JobFailed(409, status.get("error") or status["status"])
        return _check(response).content

    def cancel(self) -> dict[str, Any]:
        return _check(self.client.request("DELETE", f"/api/v1/jobs/{self.id}")).json()


class Table:
    """A small table without pandas: ``columns`` and ``rows``; ``column(name)`` gives one column,
    iterating gives each row as a dict, ``str()`` lines it up, ``to_csv()`` writes it."""

    def __init__(self, columns: list[str], rows: list[list[Any]]) -> None:
        self.columns = columns
        self.rows = rows

    def column(self, name: str) -> list[Any]:
        position = self.columns.index(name)
        return [row[position] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (dict(zip(self.columns, row, strict=True)) for row in self.rows)

    def __str__(self) -> str:
        def text(value: Any) -> str:
            return "" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)

        cells = [self.columns, *([text(value) for value in row] for row in self.rows)]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells)

    def to_csv(self, path: str | pathlib.Path) -> None:
        with open(path, "w", newline="") as out:
            write_csv(out, self.columns, self.rows)


class Sweep:
    """A sweep submitted with ``Client.sweep``: its points are jobs (``job(point)``)."""

    def __init__(self, client: "Client", sweep_id: str) -> None:
        self.client = client
        self.id = sweep_id

    def __repr__(self) -> str:
        return f"Sweep({self.id!r})"

    def status(self) -> dict[str, Any]:
        return _check(self.client.request("GET", f"/api/v1/sweeps/{self.id}")).json()

    def wait(self, progress: bool = False, timeout: float | None = None, poll_s: float = 0.5) -> dict[str, Any]:
        """Blocks until every point has ended and returns the sweep's status; ``progress=True``
        shows a bar of points. Follows the sweep's event stream, and polls if it breaks."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(unit="point", leave=False)
        try:
            while True:
                for status in self._events(deadline):
                    if bar is not None:
                        bar.total = status["points"]["total"]
                        bar.set_description(status["status"])
                        bar.update(status["points"]["ended"] - bar.n)
                    if status["status"] in FINAL:
                        return status
                status = self.status()
                if status["status"] in FINAL:
                    return status
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(f"sweep {self.id} is still {status['status']} after {timeout} s")
                time.sleep(poll_s)
        finally:
            if bar is not None:
                bar.close()

    def _events(self, deadline: float | None) -> Iterator[dict[str, Any]]:
        return _status_events(_server_events(self.client.http, f"/api/v1/sweeps/{self.id}/events", deadline))

    def summary(self) -> Table:
        """One row per point: ``point``, ``job_id``, ``status``, a column per axis, ``wall_s``,
        ``<layer>.spikes`` and ``<layer>.rate_hz`` per recorded layer, ``error``."""
        table = _check(self.client.request("GET", f"/api/v1/sweeps/{self.id}/summary")).json()
        return Table(table["columns"], table["rows"])

    def job(self, point: int) -> Job:
        """The job of one point (its full result: ``sweep.job(3).result()``)."""
        return Job(self.client, self.summary().column("job_id")[point])

    def cancel(self) -> dict[str, Any]:
        return _check(self.client.request("DELETE", f"/api/v1/sweeps/{self.id}")).json()


def wait_until_ready(url: str, processes: list[subprocess.Popen] | None = None, timeout_s: float = 90.0) -> None:
    """Polls ``url``/readyz until the service is ready (Redis up, a worker alive).

    With ``processes`` (servers this caller started), fails at once if one of them has exited.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in processes or []:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode} before {url} was ready")
        try:
            if httpx.get(f"{url.rstrip('/')}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout_s} s")


class Client:
    def __init__(self, url: str = "http://127.0.0.1:8000", key: str | None = None, timeout: float = 60.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)  # event streams
        self._plain = None if _proxied(url) else _Connections(url.rstrip("/"), headers, timeout)

    def request(
        self,
        method: str,
        path: str,
        params: dict[str, Any] | None = None,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        """One plain request to the API (``path`` from the server's root, e.g. ``/api/v1/jobs``);
        the response is not checked."""
        if self._plain is None:
            return self.http.request(
                method, path, params=params, content=body, headers=headers, timeout=timeout or httpx.USE_CLIENT_DEFAULT
            )
        return self._plain.request(method, path, params, body, headers or {}, timeout)

    def submit(self, request: dict[str, Any] | str | pathlib.Path) -> Job:
        """Submits a request given as a dict or as the path of a JSON file."""
        body = pathlib.Path(request).read_bytes() if isinstance(request, (str, pathlib.Path)) else json.dumps(request).encode()
        response = self.request("POST", "/api/v1/jobs", body=body, headers={"Content-Type": "application/json"})
        created = _check(response).json()
        return Job(self, created["id"], created.get("warnings"))

    def submit_many(self, requests: Iterable[dict[str, Any] | str | pathlib.Path], concurrency: int = 8) -> list[Job]:
        """Submits many requests over ``concurrency`` connections at once (a parameter sweep);
        returns their jobs in the order given. Raises on the first refused submission."""
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(self.submit, requests))

    def sweep(
        self,
        base: dict[str, Any] | str | pathlib.Path,
        axes: dict[str, list[Any]],
        mode: str = "grid",
    ) -> Sweep:
        """Submits a sweep: ``base`` (a request, or the path of one) with each axis ``path: values``
        (for example ``{"network.layers[1].params.v_th": [0.5, 1.0], "seed": [0, 1, 2]}``) set
        in every combination (``mode="grid"``) or pairwise (``"zip"``). Every point is validated
        before any is queued."""
        request = json.loads(pathlib.Path(base).read_text()) if isinstance(base, (str, pathlib.Path)) else base
        axes_list = [{"path": path, "values": values} for path, values in axes.items()]
        return self.submit_sweep({"base": request, "axes": axes_list, "mode": mode})

    def submit_sweep(self, body: dict[str, Any]) -> Sweep:
        """Submits a sweep given whole: ``{"base": request, "axes": [{"path", "values"}], "mode"}``."""
        response = self.request(
            "POST", "/api/v1/sweeps", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        return Sweep(self, _check(response).json()["id"])

    def job(self, job_id: str) -> Job:
        return Job(self, job_id)

    def jobs(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return _check(self.request("GET", "/api/v1/jobs", params={"offset": offset, "limit": limit})).json()

    def close(self) -> None:
        self.http.close()
        if self._plain is not None:
            self._plain.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
