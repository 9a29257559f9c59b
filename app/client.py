"""Python client for the spikeserve API. Needs httpx and numpy, not torch.

from app.client import Client
with Client("http://127.0.0.1:8000", key="...") as client:
    job = client.submit("examples/seed.json")
    job.wait(progress=True)
    result = job.result()           # worker.results.Result, arrays as numpy
    result.layers["out"].times
"""

import json
import pathlib
import subprocess
import time
from typing import Any

import httpx

from worker.results import Result

FINAL = ("succeeded", "failed", "cancelled")


class SpikeserveError(Exception):
    """The API refused a call; ``status`` is the HTTP status and ``detail`` the API's explanation."""

    def __init__(self, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        if isinstance(detail, list):  # validation errors: one line per field
            text = "; ".join(f"{'.'.join(map(str, e.get('loc', [])))}: {e.get('msg')}" for e in detail)
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


class Job:
    def __init__(self, client: "Client", job_id: str) -> None:
        self.client = client
        self.id = job_id

    def __repr__(self) -> str:
        return f"Job({self.id!r})"

    def status(self) -> dict[str, Any]:
        return _check(self.client.http.get(f"/api/v1/jobs/{self.id}")).json()

    def wait(self, progress: bool = False, timeout: float | None = None, poll_s: float = 0.2) -> dict[str, Any]:
        """Blocks until the job is final and returns its status; ``progress=True`` shows a bar."""
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(unit="step", leave=False)
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while True:
                status = self.status()
                if bar is not None:
                    bar.total = status["progress"]["steps_total"]
                    bar.set_description(status["status"])
                    bar.update(status["progress"]["steps_done"] - bar.n)
                if status["status"] in FINAL:
                    return status
                if deadline is not None and time.monotonic() > deadline:
                    raise TimeoutError(f"job {self.id} is still {status['status']} after {timeout} s")
                time.sleep(poll_s)
        finally:
            if bar is not None:
                bar.close()

    def result(self, format: str = "npz") -> Result:
        """The result decoded into numpy arrays; raises JobFailed if the job failed or was cancelled."""
        response = self.client.http.get(f"/api/v1/jobs/{self.id}/result", params={"format": format})
        if response.status_code == 409:
            status = self.status()
            if status["status"] in ("failed", "cancelled"):
                raise JobFailed(409, status.get("error") or status["status"])
        raw = _check(response).content
        return Result.from_npz(raw) if format == "npz" else Result.from_json(raw)

    def result_bytes(self, format: str = "npz") -> bytes:
        return _check(self.client.http.get(f"/api/v1/jobs/{self.id}/result", params={"format": format})).content

    def cancel(self) -> dict[str, Any]:
        return _check(self.client.http.delete(f"/api/v1/jobs/{self.id}")).json()


def wait_until_ready(url: str, processes: list[subprocess.Popen] | None = None, timeout_s: float = 90.0) -> None:
    """Polls ``url``/readyz until the service is ready (Redis up, a worker alive).

    With ``processes`` (servers this caller started), fails at once if one of them has exited.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for process in processes or []:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args} exited with {process.returncode} before {url} was ready")
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
        self.http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def submit(self, request: dict[str, Any] | str | pathlib.Path) -> Job:
        """Submits a request given as a dict or as the path of a JSON file."""
        body = pathlib.Path(request).read_bytes() if isinstance(request, (str, pathlib.Path)) else json.dumps(request).encode()
        response = self.http.post("/api/v1/jobs", content=body, headers={"Content-Type": "application/json"})
        return Job(self, _check(response).json()["id"])

    def job(self, job_id: str) -> Job:
        return Job(self, job_id)

    def jobs(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        return _check(self.http.get("/api/v1/jobs", params={"offset": offset, "limit": limit})).json()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
