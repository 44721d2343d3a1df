r"""A real HTTP model server for tests and tutorials, and an httpx client for it.

:class:`ModelServer` serves a small deterministic torch image classifier
(:func:`demo_classifier`, 3x8x8 images, 4 classes) on ``127.0.0.1`` at a free
port, from the standard library's :mod:`http.server` in a background thread.
Endpoints (``POST``, JSON body ``{"inputs": [[...]]}`` with one image per row):

- ``/predict``: ``{"probabilities": [[p0, p1, p2, p3], ...]}``;
- ``/label``: ``{"labels": [k, ...]}``, the top class only;
- ``/caption``: ``{"captions": ["a bright photo of a cat", ...]}``.

``GET /stats`` returns the server-side counters. The server counts a row as
*answered* (paid) when it sends it in a well-formed 200 reply, and keeps how
many times each distinct row was answered, so tests can check that no paid
query was lost or duplicated. It can inject faults every Nth request:
``"error"`` (HTTP 500), ``"timeout"`` (holds the request, then closes without
answering), ``"drop"`` (closes the connection at once), ``"malformed"`` (a
truncated JSON body) and ``"slow"`` (answers after a delay).

:class:`HTTPModelClient` is the matching batch function for
:class:`~captum_lr.BlackBox`: it maps 5xx/429 replies, timeouts, dropped
connections and malformed bodies to :class:`~captum_lr.remote.blackbox.TransientError`
(retried) and other 4xx replies to ``ValueError``.

Examples::

    >>> with ModelServer(faults={"error": 5}) as server:
    ...     api = BlackBox(HTTPModelClient(server.url, "predict"), batch_size=32)
    ...     probs = api(torch.rand(2, 3, 8, 8))
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import torch

from captum_lr.remote.blackbox import TransientError

CLASSES = ("cat", "dog", "car", "tree")
FAULTS = ("error", "timeout", "drop", "malformed", "slow")
ENDPOINTS = ("predict", "label", "caption")


def demo_classifier() -> torch.nn.Module:
    r"""A fixed small CNN on 3x8x8 images with 4 classes, returning softmax
    probabilities (weights from a seeded generator, identical on every call)."""
    gen = torch.Generator().manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 6, 3, padding=1),
        torch.nn.Tanh(),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 4 * 4, len(CLASSES)),
        torch.nn.Softmax(dim=1),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return net.eval()


def demo_images(n: int = 2) -> torch.Tensor:
    r"""``n`` deterministic 3x8x8 test images (a seeded smooth pattern)."""
    gen = torch.Generator().manual_seed(1)
    ramp = torch.linspace(-1, 1, 8)
    base = ramp.view(1, 1, 8, 1) * ramp.view(1, 1, 1, 8)
    return (base + 0.5 * torch.randn(n, 3, 8, 8, generator=gen)).float()


def caption_of(probabilities: torch.Tensor, images: torch.Tensor) -> list[str]:
    r"""The ``/caption`` endpoint's text: brightness and the top class."""
    top = probabilities.argmax(1).tolist()
    bright = (images.flatten(1).mean(1) > 0).tolist()
    return [
        f"a {'bright' if b else 'dark'} photo of a {CLASSES[k]}"
        for k, b in zip(top, bright)
    ]


class ModelServer:
    r"""
    Serves :func:`demo_classifier` (or any model returning probabilities) over
    HTTP on 127.0.0.1, in a background thread. Use it as a context manager, or
    call :meth:`start` and :meth:`stop`.

    Args:

        model (torch.nn.Module, optional): Maps a float32 batch ``(n, 3, 8, 8)``
                    (or the shape the model takes) to ``(n, classes)``
                    probabilities. None: :func:`demo_classifier`.
                    Default: None
        faults (Mapping[str, int], optional): Fault kind -> N: inject that fault
                    into every Nth request (counted over all POST requests).
                    Kinds: ``"error"``, ``"timeout"``, ``"drop"``,
                    ``"malformed"``, ``"slow"``.
                    Default: None
        delay (float, optional): Seconds a ``"timeout"`` request is held
                    (set it above the client's timeout) and a ``"slow"`` reply
                    waits (set it below).
                    Default: 0.5
        port (int, optional): 0 picks a free port.
                    Default: 0

    Attributes:

        requests (int): POST requests received.
        answered_rows (int): Rows sent back in well-formed 200 replies.
        row_answers (Counter): How many times each distinct row (by a hash of
                    its bytes) was answered.
        faults_injected (Counter): Faults injected, by kind.

    Examples::

        >>> with ModelServer() as server:
        ...     probs = HTTPModelClient(server.url)(np.zeros((1, 3, 8, 8)))
    """

    def __init__(
        self,
        model: torch.nn.Module | None = None,
        faults: Mapping[str, int] | None = None,
        delay: float = 0.5,
        port: int = 0,
    ) -> None:
        faults = dict(faults or {})
        for kind, every in faults.items():
            if kind not in FAULTS:
                raise ValueError(f"unknown fault {kind!r}; use one of {FAULTS}.")
            if isinstance(every, bool) or not isinstance(every, int) or every < 1:
                raise ValueError(f"faults[{kind!r}] must be a positive int N.")
        self.model = model if model is not None else demo_classifier()
        self.faults = faults
        self.delay = float(delay)
        self.port = port
        self.lock = threading.Lock()
        self.requests = 0
        self.answered_rows = 0
        self.row_answers: Counter[bytes] = Counter()
        self.faults_injected: Counter[str] = Counter()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        r"""``http://127.0.0.1:<port>``."""
        if self._httpd is None:
            raise RuntimeError("the server is not running; call start() first.")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> ModelServer:
        r"""Binds to 127.0.0.1 and serves in a daemon thread."""
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        r"""Stops serving and closes the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ModelServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        r"""The counters: requests, answered rows, distinct rows, the most times
        one row was answered, and the injected faults."""
        with self.lock:
            return {
                "requests": self.requests,
                "answered_rows": self.answered_rows,
                "distinct_rows": len(self.row_answers),
                "max_answers_per_row": max(self.row_answers.values(), default=0),
                "faults": dict(self.faults_injected),
            }

    def _next_fault(self) -> str | None:
        with self.lock:
            self.requests += 1
            k = self.requests
            for kind, every in self.faults.items():
                if k % every == 0:
                    self.faults_injected[kind] += 1
                    return kind
        return None

    def _answer(self, endpoint: str, images: np.ndarray) -> dict[str, Any]:
        x = torch.from_numpy(images)
        with torch.no_grad():
            probs = self.model(x)
        if endpoint == "predict":
            return {"probabilities": probs.tolist()}
        if endpoint == "label":
            return {"labels": probs.argmax(1).tolist()}
        return {"captions": caption_of(probs, x)}

    def _count(self, images: np.ndarray) -> None:
        digests = [
            hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in images
        ]
        with self.lock:
            self.answered_rows += images.shape[0]
            self.row_answers.update(digests)


class _Handler(BaseHTTPRequestHandler):
    owner: ModelServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output quiet

    def _reply(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/") == "/stats":
            self._reply(200, json.dumps(self.owner.stats()).encode())
        else:
            self._reply(404, b'{"error": "not found"}')

    def do_POST(self) -> None:  # noqa: N802
        owner = self.owner
        endpoint = self.path.strip("/")
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if endpoint not in ENDPOINTS:
            self._reply(404, json.dumps({"error": f"no endpoint {endpoint}"}).encode())
            return
        fault = owner._next_fault()
        if fault in ("timeout", "drop"):
            if fault == "timeout":
                time.sleep(owner.delay)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault == "error":
            self._reply(500, b'{"error": "injected server error"}')
            return
        try:
            images = np.asarray(json.loads(raw)["inputs"], dtype=np.float32)
            if images.ndim < 2:
                raise ValueError("inputs must have a batch dimension")
        except (ValueError, KeyError, TypeError) as exc:
            self._reply(400, json.dumps({"error": f"bad request: {exc}"}).encode())
            return
        body = json.dumps(owner._answer(endpoint, images)).encode()
        if fault == "malformed":
            self._reply(200, body[: len(body) // 2])
            return
        if fault == "slow":
            time.sleep(owner.delay)
        # Counted as paid when the reply is sent (before the write, so a client
        # that has its answer always sees it counted).
        owner._count(images)
        self._reply(200, body)


class HTTPModelClient:
    r"""
    A batch function calling one endpoint of a :class:`ModelServer` (or any
    server speaking its JSON protocol) with httpx; pass it to
    :class:`~captum_lr.BlackBox`.

    Args:

        url (str): The server's base URL, e.g. ``server.url``.
        endpoint (str, optional): ``"predict"`` (probabilities, ``(n, classes)``
                    array), ``"label"`` (list of ints) or ``"caption"`` (list of
                    strings).
                    Default: ``"predict"``
        timeout (float, optional): Seconds to wait for a reply.
                    Default: 5.0

    Attributes:

        cache_namespace (str): ``"captum-lr-demo/<endpoint>"``: BlackBox mixes it
                    into its cache keys, so a disk cache stays valid when the
                    server restarts on another port.

    Examples::

        >>> api = BlackBox(HTTPModelClient(server.url, "label"), batch_size=16,
        ...                output=LabelIndicator(4))
    """

    def __init__(self, url: str, endpoint: str = "predict", timeout: float = 5.0):
        import httpx

        if endpoint not in ENDPOINTS:
            raise ValueError(f"endpoint must be one of {ENDPOINTS}, not {endpoint!r}.")
        self.url = url.rstrip("/") + "/" + endpoint
        self.endpoint = endpoint
        self.cache_namespace = f"captum-lr-demo/{endpoint}"
        self._client = httpx.Client(timeout=timeout)
        self._httpx = httpx

    def __call__(self, images: Any) -> Any:
        r"""Sends one batch; returns the endpoint's answer, one entry per row."""
        data = np.asarray(images, dtype=np.float32)
        n = data.shape[0]
        httpx = self._httpx
        try:
            reply = self._client.post(self.url, json={"inputs": data.tolist()})
        except httpx.TransportError as exc:  # timeouts, dropped connections
            raise TransientError(f"{type(exc).__name__}: {exc}") from exc
        if reply.status_code >= 500 or reply.status_code == 429:
            raise TransientError(f"HTTP {reply.status_code} from {self.url}")
        if reply.status_code != 200:
            raise ValueError(f"HTTP {reply.status_code} from {self.url}: {reply.text}")
        key = {"predict": "probabilities", "label": "labels", "caption": "captions"}
        try:
            answer = reply.json()[key[self.endpoint]]
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError(f"malformed body from {self.url}: {exc}") from exc
        if not isinstance(answer, list) or len(answer) != n:
            raise TransientError(
                f"malformed body from {self.url}: expected {n} answers, got "
                f"{len(answer) if isinstance(answer, list) else type(answer)}"
            )
        return (
            np.asarray(answer, dtype=np.float32)
            if self.endpoint == "predict"
            else answer
        )

    def close(self) -> None:
        r"""Closes the connection pool."""
        self._client.close()
