"""MLflow stores for tests: a real ``mlflow server`` process on 127.0.0.1 (sqlite backend and
proxied artifacts in a temporary folder, stoppable and restartable on the same port and store),
and fresh local sqlite stores."""
from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


@functools.cache
def _empty_sqlite_store() -> Path:
    from mlflow.tracking import MlflowClient

    path = Path(tempfile.mkdtemp(prefix="mlflow-template-")) / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()  # creates the schema (seconds)
    return path


def fresh_sqlite_store(path: Path) -> str:
    """A new, empty MLflow sqlite store at ``path`` (a copy of one created once per test
    process: building the schema costs seconds); returns its tracking URI."""
    shutil.copy(_empty_sqlite_store(), path)
    return f"sqlite:///{path}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class MlflowServer:
    def __init__(self, root: Path, port: int | None = None):
        self.root = Path(root)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log = self.root / "server.log"

    def start(self, timeout_s: float = 90.0) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not (self.root / "backend.db").exists():
            fresh_sqlite_store(self.root / "backend.db")
        mlflow_cli = Path(sys.executable).with_name("mlflow")
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                [str(mlflow_cli), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{self.root / 'backend.db'}",
                 "--serve-artifacts", "--artifacts-destination", str(self.root / "artifacts")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                env={**{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
                     # no GenAI job runner (8 extra processes): tracking needs none of it
                     "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {self.process.returncode}; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server did not become healthy in {timeout_s} s; see {self.log}")

    def stop(self) -> None:
        if self.process is None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)  # the server and its uvicorn worker
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None
        self._wait_port_closed()

    def _wait_port_closed(self) -> None:
        for _ in range(100):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", self.port)) != 0:
                    return
            time.sleep(0.1)
