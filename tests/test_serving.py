"""End-to-end: LR attributions through the bundled HTTP model server."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from captum_lr import LREstimator, LRIntegratedGradients, LRSaliency
from captum_lr.estimation.budget import estimate_queries
from captum_lr.remote.blackbox import BlackBox, PermanentError, QueryBudgetExceeded
from captum_lr.remote.outputs import LabelIndicator, TextScore
from captum_lr.remote.serving import (
    HTTPModelClient,
    ModelServer,
    demo_classifier,
    demo_images,
)

ROOT = Path(__file__).resolve().parents[1]
FAULTS = {"error": 5, "drop": 7, "malformed": 11, "timeout": 13}
IG = {"target": 1, "n_steps": 4}


def _estimator() -> LREstimator:
    return LREstimator(n_samples=16, sigma=0.05, seed=0)


def _in_process(x: torch.Tensor) -> torch.Tensor:
    net = demo_classifier()

    def model_fn(images: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net(images)

    return LRIntegratedGradients(model_fn, estimator=_estimator()).attribute(x, **IG)


@pytest.fixture
def server():
    with ModelServer() as s:
        yield s


@pytest.fixture
def faulty_server():
    # A "timeout" request is held 2.5 s, past the client's 1.5 s timeout; normal
    # replies of this tiny model take milliseconds, far below it even on a
    # loaded machine (a normal reply timing out would be a paid duplicate).
    with ModelServer(faults=FAULTS, delay=2.5) as s:
        yield s


def test_server_listens_on_loopback_and_reports_stats(server):
    assert server.url.startswith("http://127.0.0.1:")
    stats = httpx.get(server.url + "/stats", timeout=2).json()
    assert stats["requests"] == 0 and stats["answered_rows"] == 0
    client = HTTPModelClient(server.url)
    probs = client(demo_images(3).numpy())
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert server.stats()["answered_rows"] == 3
    with pytest.raises(ValueError, match="HTTP 400"):
        client(np.zeros(3, dtype=np.float32))  # no batch dimension for the model
    with pytest.raises(ValueError, match="unknown fault"):
        ModelServer(faults={"fire": 2})


def test_http_attribution_equals_in_process(server):
    x = demo_images(2)
    api = BlackBox(HTTPModelClient(server.url), batch_size=16)
    remote = LRIntegratedGradients(api, estimator=_estimator()).attribute(x, **IG)
    local = _in_process(x)
    # float32 values survive the JSON round trip exactly and the model is
    # deterministic per row, so the maps agree to float32 rounding of the
    # batched forward passes (|f| <= 1, sigma = 0.05, n_steps = 4).
    torch.testing.assert_close(remote, local, atol=1e-4, rtol=1e-4)
    assert remote.abs().max() > 1e-2  # not a trivially zero map
    assert api.queries == server.stats()["answered_rows"]


def test_faults_change_nothing_and_lose_or_duplicate_no_paid_query(faulty_server):
    x = demo_images(2)
    api = BlackBox(
        HTTPModelClient(faulty_server.url, timeout=1.5),
        batch_size=16,
        max_concurrency=3,
        retries=12,
        backoff=0.01,
        max_backoff=0.05,
    )
    ig = LRIntegratedGradients(api, estimator=_estimator())
    expected = estimate_queries(ig, x, **IG)
    attr = ig.attribute(x, **IG)
    torch.testing.assert_close(attr, _in_process(x), atol=1e-4, rtol=1e-4)
    stats = faulty_server.stats()
    assert set(stats["faults"]) == set(FAULTS)  # every kind of fault happened
    assert api.retried >= sum(stats["faults"].values())
    # Every distinct row was paid for exactly once, and every row the
    # attribution needed was answered (the estimator's rows are all distinct).
    assert stats["max_answers_per_row"] == 1
    assert stats["answered_rows"] == stats["distinct_rows"] == api.queries
    assert api.queries + api.cache_hits == expected


def test_max_queries_stops_before_the_cap(server):
    x = demo_images(2)
    api = BlackBox(HTTPModelClient(server.url), batch_size=8, max_queries=100)
    ig = LRIntegratedGradients(api, estimator=_estimator())
    assert estimate_queries(ig, x, **IG) == 136 > 100
    with pytest.raises(QueryBudgetExceeded, match=r"only \d+ more fit") as info:
        ig.attribute(x, **IG)
    assert "100" in str(info.value)
    assert api.queries <= 100
    assert server.stats()["answered_rows"] == api.queries
    # Raising the cap resumes: answered rows come from the cache, unpaid.
    spent = api.queries
    api.max_queries = 136
    attr = ig.attribute(x, **IG)
    assert api.queries == 136 and api.cache_hits == spent
    assert server.stats()["max_answers_per_row"] == 1
    torch.testing.assert_close(attr, _in_process(x), atol=1e-4, rtol=1e-4)


class _Interrupt(Exception):
    pass


def test_interrupted_run_resumes_from_disk_cache(server, tmp_path):
    x = demo_images(2)
    client = HTTPModelClient(server.url)
    calls = {"n": 0}

    def crashes_after_three_batches(images):
        calls["n"] += 1
        if calls["n"] > 3:
            raise _Interrupt("simulated crash")
        return client(images)

    first = BlackBox(
        crashes_after_three_batches,
        batch_size=16,
        cache=tmp_path,
        namespace="demo",
        transient=(),
    )
    with pytest.raises(PermanentError, match=r"batch \d+ of \d+"):
        LRIntegratedGradients(first, estimator=_estimator()).attribute(x, **IG)
    first.close()
    done = first.queries
    assert done > 0 and done == server.stats()["answered_rows"]

    again = BlackBox(client, batch_size=16, cache=tmp_path, namespace="demo")
    assert again.stats["cached"] == done
    ig = LRIntegratedGradients(again, estimator=_estimator())
    total = estimate_queries(ig, x, **IG)
    attr = ig.attribute(x, **IG)
    assert again.cache_hits == done and again.queries == total - done
    stats = server.stats()
    assert stats["answered_rows"] == stats["distinct_rows"] == total
    torch.testing.assert_close(attr, _in_process(x), atol=1e-4, rtol=1e-4)
    # A third run with the same seed and inputs sends identical queries: all cached.
    third = BlackBox(client, batch_size=16, cache=tmp_path, namespace="demo")
    LRIntegratedGradients(third, estimator=_estimator()).attribute(x, **IG)
    assert third.queries == 0 and third.cache_hits == total


KILLED_RUN = """
import os, sys, torch
from captum_lr import LREstimator, LRIntegratedGradients
from captum_lr.remote.blackbox import BlackBox
from captum_lr.remote.serving import demo_classifier, demo_images
net = demo_classifier()
calls = 0
def model(images):
    global calls
    calls += 1
    if calls > 4:
        os._exit(9)  # killed: no cleanup, no exception handling
    with torch.no_grad():
        return net(torch.from_numpy(images))
api = BlackBox(model, batch_size=16, cache=sys.argv[1], namespace="demo")
est = LREstimator(n_samples=16, sigma=0.05, seed=0)
LRIntegratedGradients(api, estimator=est).attribute(demo_images(2), target=1, n_steps=4)
"""


def test_killed_process_resumes_from_disk_cache(tmp_path):
    """A separate process is killed mid-run; this process re-runs the same
    attribution (same seed) and re-sends only what the killed one had not
    answered: the queries are a function of (seed, inputs), not of the process."""
    proc = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, str(tmp_path)],
        cwd=ROOT,
        timeout=60,
        capture_output=True,
    )
    assert proc.returncode == 9, proc.stderr.decode()[-2000:]
    net = demo_classifier()
    sent = []

    def model(images):
        sent.append(images.shape[0])
        with torch.no_grad():
            return net(torch.from_numpy(images))

    api = BlackBox(model, batch_size=16, cache=tmp_path, namespace="demo")
    done = api.stats["cached"]  # rows the killed process had answered
    assert done > 0
    ig = LRIntegratedGradients(api, estimator=_estimator())
    total = estimate_queries(ig, demo_images(2), **IG)
    attr = ig.attribute(demo_images(2), **IG)
    assert api.cache_hits == done and api.queries == sum(sent) == total - done
    torch.testing.assert_close(attr, _in_process(demo_images(2)), atol=1e-4, rtol=1e-4)


@pytest.mark.filterwarnings("ignore::captum_lr.ConstantOutputWarning")
def test_label_and_caption_endpoints(server):
    # Hard labels: about half the noisy queries keep the label (the estimator
    # warns about that); the indicator's smoothed gradient is still nonzero.
    x = demo_images(2)
    est = LREstimator(n_samples=64, sigma=1.0, seed=0)
    labels = BlackBox(
        HTTPModelClient(server.url, "label"), batch_size=64, output=LabelIndicator(4)
    )
    attr = LRSaliency(labels, estimator=est).attribute(x, target=0)
    assert attr.shape == x.shape and torch.isfinite(attr).all() and attr.abs().sum() > 0
    captions = BlackBox(
        HTTPModelClient(server.url, "caption"),
        batch_size=64,
        output=TextScore("a bright photo of a cat"),
    )
    scores = captions(x)
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()
    # Re-scoring against another caption re-uses the cached raw answers.
    paid = server.stats()["answered_rows"]
    captions.output = TextScore("a dark photo of a dog", scorer="exact_match")
    assert captions(x).tolist() == [0.0, 0.0]
    assert server.stats()["answered_rows"] == paid


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(
        r"^## Explaining a model behind an API\n(.*?)(?=^## |\Z)", text, re.S | re.M
    )
    if match is None:
        pytest.skip(
            "README.md has no '## Explaining a model behind an API' section yet"
        )
    code = re.search(r"```python\n(.*?)```", match.group(1), re.S)
    assert code is not None, "the README section has no ```python example"
    return textwrap.dedent(code.group(1))


def test_readme_api_example_runs_as_written(tmp_path, monkeypatch):
    code = _readme_example()
    monkeypatch.chdir(tmp_path)  # the example's disk cache goes here
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, "README.md", "exec"), namespace)


def test_concurrent_calls_never_send_a_row_past_the_cap():
    """Four threads call one BlackBox at once, each with 8 new rows in batches of
    4, under a cap of 18 rows (it ends in the middle of the fifth batch). Every
    reply takes 0.3 s, so all four calls are in flight together: two of them fit
    and are answered, the other two are refused before sending anything."""
    with ModelServer(faults={"slow": 1}, delay=0.3) as slow_server:
        api = BlackBox(
            HTTPModelClient(slow_server.url),
            batch_size=4,
            max_concurrency=4,
            max_queries=18,
        )
        images = demo_images(32).split(8)
        start = threading.Barrier(len(images))
        outcomes: list = [None] * len(images)

        def call(i: int) -> None:
            start.wait()
            try:
                outcomes[i] = api(images[i])
            except QueryBudgetExceeded as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=30)
        stats = slow_server.stats()
    assert stats["answered_rows"] <= 18  # no row past the cap reached the server
    answered = [o for o in outcomes if isinstance(o, torch.Tensor)]
    refused = [o for o in outcomes if isinstance(o, QueryBudgetExceeded)]
    assert len(answered) == 2 and len(refused) == 2
    assert all("nothing of this call was sent" in str(e) for e in refused)
    # Every row the server answered was counted, cached and used.
    assert api.queries == stats["answered_rows"] == 16 == api.stats["cached"]
    assert stats["max_answers_per_row"] == 1
