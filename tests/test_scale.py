"""captum_lr.scale on a local Ray: a dataset job equals a plain per-example
loop, resumes after a fault, shares a BlackBox budget across workers;
RayForward equals the single-process attribution; bad input fails first."""

from __future__ import annotations

import functools
import os
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

ray = pytest.importorskip("ray")
pytest.importorskip("pyarrow")

from captum.attr import NoiseTunnel  # noqa: E402

from captum_lr import (  # noqa: E402
    BlackBox,
    LREstimator,
    LRGradientShap,
    LRInputXGradient,
    LRIntegratedGradients,
    LRLayerConductance,
    LRLayerGradientXActivation,
    LRLayerIntegratedGradients,
    LRMaskGradient,
    LRNeuronConductance,
    LRNeuronIntegratedGradients,
    LRSaliency,
    QueryBudgetExceeded,
)
from captum_lr.scale import (  # noqa: E402
    DatasetJobError,
    RayForward,
    attribute_dataset,
    load_attributions,
    seed_example,
)
from captum_lr.scale.store import read_table  # noqa: E402
from captum_lr.scale.worker import ExplainWorker, WorkerConfig  # noqa: E402

# the workers get this module's functions by value (tests/ is not importable
# in Ray's worker processes)
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

SHAPE = (2, 3, 3)
KW = {"n_steps": 4, "return_convergence_delta": True}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
    yield
    if started:
        ray.shutdown()


def _net() -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(2, 3, 2), torch.nn.Tanh(), torch.nn.Flatten()
    )
    net = torch.nn.Sequential(net, torch.nn.Linear(12, 3))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return net.eval()


class Model(torch.nn.Module):
    """The small net, optionally failing: raising while ``flag`` exists on
    rows marked by a value above 8, or exiting the process once."""

    def __init__(self, flag: str | None = None, die: str | None = None) -> None:
        super().__init__()
        self.net, self.flag, self.die = _net(), flag, die

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flag and os.path.exists(self.flag) and bool((x > 8).any()):
            raise RuntimeError("model failure on a marked row")
        if self.die and os.path.exists(self.die) and bool((x > 8).any()):
            os.remove(self.die)
            os._exit(1)
        with torch.no_grad():
            return self.net(x)


def make_ig(flag: str | None = None, die: str | None = None):
    est = LREstimator(n_samples=16, seed=0)
    return LRIntegratedGradients(Model(flag, die), estimator=est)


def _rows(n: int = 8, marked: tuple[int, ...] = ()) -> list:
    g = torch.Generator().manual_seed(1)
    rows = []
    for i in range(n):
        x = torch.rand(SHAPE, generator=g)
        if i in marked:
            x[0, 0, 0] = 9.0
        rows.append((i, x, i % 3))
    return rows


def _first(res):
    """The one example of a batch of one, nested as the explainer returned."""
    if isinstance(res, (tuple, list)):
        return type(res)(_first(r) for r in res)
    return res[0]


def _reference(explainer, rows, **kw) -> dict:
    out = {}
    for i, x, y in rows:
        seed_example(0, i)
        target = {} if y is None else {"target": y}
        res = explainer.attribute(x.unsqueeze(0), **target, **kw)
        if kw.get("return_convergence_delta"):
            res = res[0]
        out[i] = _first(res)
    return out


@pytest.fixture(scope="module")
def ig_job(tmp_path_factory):
    out = tmp_path_factory.mktemp("ig")
    rows = _rows()
    summary = attribute_dataset(
        make_ig, rows, attribute_kwargs=KW, output=out, num_workers=2,
        batch_size=2, show_progress=False,
    )  # fmt: skip
    return out, rows, summary


def test_two_workers_equal_a_per_example_loop(ig_job):
    out, rows, summary = ig_job
    assert (summary.examples_done, summary.examples_skipped) == (8, 0)
    got = load_attributions(out)
    explainer = make_ig()
    before = explainer.queries
    want = _reference(explainer, rows, **KW)
    assert set(got) == set(want)
    for i in want:
        torch.testing.assert_close(got[i], want[i], rtol=0, atol=0)
    assert summary.rows == explainer.queries - before
    table = read_table(out).to_pydict()
    assert len(set(table["id"])) == len(table["id"]) == 8
    # each batch names the actor that explained it: at most the 2 of the
    # pool (Ray Data hands a batch to whichever actor is idle, so on a loaded
    # machine one actor can take all four; the fresh-clone CI saw that once)
    assert 1 <= len(set(table["worker"])) <= 2
    assert all(d is not None for d in table["delta"])
    again = attribute_dataset(
        make_ig, rows, attribute_kwargs=KW, output=out, show_progress=False
    )
    assert (again.examples_done, again.examples_skipped, again.rows) == (0, 8, 0)


def _make(kind: str):
    est = LREstimator(n_samples=16, seed=0)
    net = _net()
    if kind == "saliency":
        return LRSaliency(net, estimator=est)
    if kind == "ixg":
        return LRInputXGradient(net, estimator=est)
    if kind == "gradshap":
        return LRGradientShap(net, estimator=est)
    if kind == "noise_tunnel":
        return NoiseTunnel(LRIntegratedGradients(net, estimator=est))
    if kind == "ig":
        return LRIntegratedGradients(net, estimator=est)
    if kind == "mask":
        return LRMaskGradient(net, seed=0)
    layer_classes = {
        "layer_ig": LRLayerIntegratedGradients,
        "layer_conductance": LRLayerConductance,
        "neuron_ig": LRNeuronIntegratedGradients,
        "neuron_conductance": LRNeuronConductance,
    }
    if kind == "layer_gxa":  # a list of layers, one feeding the other
        return LRLayerGradientXActivation(net, [net[0][0], net[0][1]], estimator=est)
    return layer_classes[kind](net, net[0][1], estimator=est)


KINDS = {
    "saliency": {},
    "ixg": {},
    "ig": {"n_steps": 3},
    "gradshap": {"baselines": torch.zeros(3, *SHAPE), "n_samples": 3},
    "noise_tunnel": {"nt_samples": 2, "n_steps": 2},
    "layer_ig": {"n_steps": 3},
    "layer_conductance": {"n_steps": 3},
    "layer_gxa": {},
    "neuron_ig": {"neuron_selector": (1, 0, 1), "n_steps": 3},
    "neuron_conductance": {"neuron_selector": (1, 0, 1), "n_steps": 3},
    "mask": {"n_samples": 32},
}
NO_TARGET = {"neuron_ig"}  # Captum's neuron-to-input methods take no target


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_worker_equals_per_example_loop_for_every_class(kind, tmp_path):
    rows = _rows(3)
    config = WorkerConfig(functools.partial(_make, kind), str(tmp_path), KINDS[kind])
    if kind in NO_TARGET:
        rows = [(i, x, None) for i, x, _ in rows]
    batch = {
        "id": np.array([r[0] for r in rows]),
        "input": np.stack([r[1].numpy() for r in rows]),
    }
    if kind not in NO_TARGET:
        batch["target"] = np.array([r[2] for r in rows])
    summary = ExplainWorker(config)(batch)
    explainer = _make(kind)
    before = explainer.queries if hasattr(explainer, "queries") else None
    want = _reference(explainer, rows, **KINDS[kind])
    got = load_attributions(tmp_path)
    for i in want:
        assert type(got[i]) is type(want[i])
        torch.testing.assert_close(got[i], want[i], rtol=0, atol=0)
    if before is not None:
        assert summary["rows"].sum() == explainer.queries - before


def test_resume_after_a_model_error_computes_only_the_missing_ids(tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    rows = _rows(8, marked=(5,))
    make = functools.partial(make_ig, str(flag))
    kw = dict(attribute_kwargs=KW, output=tmp_path / "out", show_progress=False)
    with pytest.raises(DatasetJobError, match=r"id=5 raised RuntimeError") as err:
        attribute_dataset(make, rows, num_workers=1, batch_size=2, **kw)
    lost = err.value.lost_ids
    assert 5 in lost and str(lost[0]) in str(err.value)
    written = load_attributions(tmp_path / "out")
    assert set(written) == set(range(8)) - set(lost)
    flag.unlink()
    summary = attribute_dataset(make, rows, num_workers=1, batch_size=4, **kw)
    assert summary.examples_done == len(lost)
    assert summary.examples_skipped == 8 - len(lost)
    ids = read_table(tmp_path / "out").column("id").to_pylist()
    assert sorted(ids, key=int) == [str(i) for i in range(8)]  # each id once
    want = _reference(make_ig(), rows, **KW)
    got = load_attributions(tmp_path / "out")
    for i in want:
        torch.testing.assert_close(got[i], want[i], rtol=0, atol=0)


def _api_fn(log: str, die: str):
    net = _net()

    def fn(x: np.ndarray) -> np.ndarray:
        if os.path.exists(die) and (x > 8).any() and os.path.getsize(log) > 0:
            os.remove(die)  # answered rows were paid and cached: now die
            os._exit(1)
        with open(log, "a") as fh:
            fh.write(f"{len(x)}\n")
        with torch.no_grad():
            return torch.softmax(net(torch.from_numpy(x)), 1).numpy()

    return fn


def make_api_saliency(log: str, die: str, max_queries: int | None):
    api = BlackBox(_api_fn(log, die), batch_size=8, max_queries=max_queries)
    return LRSaliency(api, estimator=LREstimator(n_samples=16, seed=0))


def _paid(log: Path) -> int:
    return sum(int(v) for v in log.read_text().split()) if log.exists() else 0


def test_blackbox_budget_is_shared_by_the_workers(tmp_path):
    log = tmp_path / "paid.log"
    log.touch()
    rows = _rows(8)
    per_example = 16 + 5  # n_samples + f(x) + 4 sigma probe rows
    cap = 3 * per_example + 5  # room for 3 examples over both workers
    make = functools.partial(make_api_saliency, str(log), str(tmp_path / "x"), cap)
    with pytest.raises(QueryBudgetExceeded, match=r"spent.*more fit") as err:
        attribute_dataset(
            make, rows, output=tmp_path / "out", num_workers=2, batch_size=1,
            show_progress=False,
        )  # fmt: skip
    paid = _paid(log)
    assert 2 * per_example < paid <= cap  # the budget was spent, never overrun
    written = load_attributions(tmp_path / "out")
    # Two workers share the cap: when it runs out both may be midway through
    # an example, so two or three examples are complete, never more.
    assert len(written) in (2, 3) and "refused" in str(err.value)


def test_a_killed_worker_is_restarted_and_nothing_is_paid_twice(tmp_path):
    log, die = tmp_path / "paid.log", tmp_path / "die"
    log.touch()
    die.touch()
    rows = _rows(6, marked=(4,))
    make = functools.partial(make_api_saliency, str(log), str(die), None)
    summary = attribute_dataset(
        make, rows, output=tmp_path / "out", num_workers=1, batch_size=3,
        show_progress=False,
    )  # fmt: skip
    assert not die.exists()  # a worker did die
    assert summary.examples_done == 6
    assert _paid(log) == summary.rows  # the retried rows came from the cache
    ids = read_table(tmp_path / "out").column("id").to_pylist()
    assert sorted(ids) == sorted(str(i) for i in range(6))


def make_net():
    return _net()


@pytest.fixture(scope="module")
def ray_forward():
    with RayForward(make_net, num_workers=2, num_cpus_per_worker=0.5) as f:
        yield f


def test_ray_forward_equals_the_single_process_attribution(ray_forward):
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(3))
    est = dict(n_samples=64, seed=0, max_batch_size=256)
    kw = dict(target=1, n_steps=4)
    want = LRIntegratedGradients(_net(), estimator=LREstimator(**est)).attribute(
        x, **kw
    )
    f, rows = ray_forward, ray_forward.rows
    got = LRIntegratedGradients(f, estimator=LREstimator(**est)).attribute(x, **kw)
    assert f.rows > rows
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


RAY_CASES = {
    "saliency": (LRSaliency, {}),
    "ig": (LRIntegratedGradients, {"n_steps": 3}),
    "gradshap": (LRGradientShap, {"baselines": torch.zeros(2, *SHAPE)}),
}


def _ray_attribution(cls, fn, kw: dict) -> torch.Tensor:
    # batches of 8 rows: the probes, then several batches kept in flight
    est = LREstimator(n_samples=64, seed=0, max_batch_size=8)
    x = torch.rand(2, *SHAPE, generator=torch.Generator().manual_seed(3))
    torch.manual_seed(0)  # GradientShap's baselines and path points
    np.random.seed(0)
    return cls(fn, estimator=est).attribute(x, target=1, **kw)


@pytest.mark.parametrize("case", sorted(RAY_CASES))
def test_ray_forward_in_flight_equals_one_batch_at_a_time(case, ray_forward):
    from captum_lr.estimation.queries import AsyncForward

    cls, kw = RAY_CASES[case]
    assert isinstance(ray_forward, AsyncForward) and ray_forward.max_in_flight == 2
    want = _ray_attribution(cls, _net(), kw)
    calls = ray_forward.calls
    got = _ray_attribution(cls, ray_forward, kw)
    assert ray_forward.calls - calls > 4
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    ray_forward.max_in_flight = 1  # the same replicas, one batch at a time
    try:
        serial = _ray_attribution(cls, ray_forward, kw)
    finally:
        ray_forward.max_in_flight = 2
    assert torch.equal(got, serial)
    with pytest.raises(ValueError, match="max_in_flight must be an int >= 1"):
        RayForward(make_net, max_in_flight=0)


class _Bomb:
    def __init__(self):
        self.lock = threading.Lock()

    def __call__(self):
        return make_ig()


def test_bad_input_fails_before_any_query(tmp_path, ig_job):
    flag = tmp_path / "queried"  # the model raises if ever asked
    flag.touch()
    make = functools.partial(make_ig, str(flag))
    rows = _rows(4)
    rows[2] = (2, torch.rand(2, 3, 4), 0)
    with pytest.raises(ValueError, match=r"id=2 has input shape \(2, 3, 4\)"):
        attribute_dataset(make, rows, output=tmp_path / "a", show_progress=False)
    with pytest.raises(TypeError, match="cannot be pickled"):
        attribute_dataset(_Bomb(), _rows(2), output=tmp_path / "b")
    done_dir = ig_job[0]
    with pytest.raises(ValueError, match="holds the results of another job"):
        attribute_dataset(
            make_ig, _rows(), attribute_kwargs={"n_steps": 5}, output=done_dir,
            show_progress=False,
        )  # fmt: skip
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert len(load_attributions(done_dir)) == 8  # untouched


def test_ray_forward_refuses_an_unpicklable_model_builder():
    with pytest.raises(TypeError, match="make_model .* cannot be pickled"):
        RayForward(_Bomb())


def test_import_captum_lr_does_not_import_ray():
    import subprocess

    code = "import sys, captum_lr; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"


def test_datasets_of_every_kind_give_the_same_rows():
    from captum_lr.scale.rows import job_rows

    rows = _rows(5)
    xs = torch.stack([r[1] for r in rows])
    ys = torch.tensor([r[2] for r in rows])
    tds = torch.utils.data.TensorDataset(xs, ys)
    loader = torch.utils.data.DataLoader(tds, batch_size=2)
    ray_ds = ray.data.from_items(
        [{"id": i, "input": x.numpy(), "target": y} for i, x, y in rows]
    )
    for ds in (rows, tds, loader, ray_ds):
        jr = job_rows(ds)
        assert sorted(jr.ids) == list(range(5)) and jr.shape == SHAPE
    with pytest.raises(ValueError, match="occurs twice"):
        job_rows([(0, xs[0]), (0, xs[1])])


def test_two_blackboxes_share_one_rate_limit_and_cache():
    import time

    from captum_lr.scale.coordinator import Coordinator, share_blackboxes

    coordinator = ray.remote(Coordinator).options(num_cpus=0).remote(None)
    answered = []

    def fn(x: np.ndarray) -> np.ndarray:
        answered.append(len(x))
        return x.sum(1)

    boxes = [BlackBox(fn, batch_size=1, requests_per_second=20) for _ in range(2)]
    for box in boxes:  # as two workers would
        assert share_blackboxes(box, coordinator) == 1
    x = torch.arange(12.0).reshape(6, 2)
    start = time.monotonic()
    threads = [threading.Thread(target=box, args=(x[i::2],)) for i, box in
               enumerate(boxes)]  # fmt: skip
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert sum(answered) == 6 and elapsed >= 5 / 20 * 0.9  # 6 starts, 1/20 s apart
    boxes[1](x)  # every row was answered by one box or the other: all cached
    assert sum(answered) == 6 and boxes[1].queries == 6
    ray.kill(coordinator)


def test_nested_attributions_round_trip_through_the_store(tmp_path):
    from captum_lr.scale.store import ExampleResult, write_part

    g = torch.Generator().manual_seed(0)
    attr = [torch.randn(3, 2, generator=g), (torch.randn(4, generator=g).double(),)]
    se = [torch.rand(3, 2, generator=g), (torch.rand(4, generator=g),)]
    write_part(tmp_path, [ExampleResult(7, attr, rows=5, stderr=se)])
    got, got_se = load_attributions(tmp_path, with_stderr=True)[7]
    assert isinstance(got, list) and isinstance(got[1], tuple)
    torch.testing.assert_close(got, attr, rtol=0, atol=0)
    assert got_se[1][0].dtype == torch.float64  # stored like its attribution
    torch.testing.assert_close(got_se[0], se[0], rtol=0, atol=0)
