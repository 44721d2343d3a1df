"""BlackBox: conversions, batching, caching, retries, budget, errors, fuzzing."""

from __future__ import annotations

import math
import threading
import time

import numpy as np
import pytest
import torch
from captum.attr import NoiseTunnel
from hypothesis import given
from hypothesis import strategies as st

from captum_lr import LREstimator, LRGradientShap, LRIntegratedGradients, LRSaliency
from captum_lr.remote.blackbox import (
    BlackBox,
    MalformedResponseError,
    PermanentError,
    QueryBudgetExceeded,
    TransientError,
)

W = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, 3.0], [2.0, 0.0, -1.0]])


class Recorder:
    """A linear 3-feature, 3-output model that records what it was sent."""

    def __init__(self, kind: str = "numpy") -> None:
        self.kind = kind
        self.batches: list[int] = []
        self.types: list[type] = []
        self.lock = threading.Lock()

    def __call__(self, x):
        with self.lock:
            self.types.append(type(x))
            self.batches.append(len(x))
        out = np.asarray(x, dtype=np.float64).reshape(len(x), -1)[:, :3] @ W.numpy().T
        if self.kind == "tensor":
            return torch.from_numpy(out)
        if self.kind == "list":
            return out.tolist()
        return out


@pytest.mark.parametrize(
    "fmt, typ", [("numpy", np.ndarray), ("list", list), ("tensor", torch.Tensor)]
)
@pytest.mark.parametrize("kind", ["numpy", "list", "tensor"])
def test_conversions_in_and_out(fmt, typ, kind):
    fn = Recorder(kind)
    bb = BlackBox(fn, batch_size=2, input_format=fmt)
    x = torch.randn(5, 3, dtype=torch.float64)
    out = bb(x)
    assert set(fn.types) == {typ} and fn.batches == [2, 2, 1]
    assert out.dtype == torch.float64 and out.device == x.device
    torch.testing.assert_close(out, x @ W.double().T)
    out32 = bb(x.float())  # new bytes -> new rows; float32 output
    assert out32.dtype == torch.float32


def test_python_scalar_and_0d_outputs_for_one_row():
    bb = BlackBox(lambda x: float(x.sum()))
    assert bb(torch.ones(1, 4)).tolist() == [4.0]
    with pytest.raises(MalformedResponseError, match="batch 1 of 1 .*one value"):
        BlackBox(lambda x: float(x.sum()))(torch.arange(12.0).reshape(3, 4))


def test_malformed_answers_name_the_batch_and_are_not_cached():
    def fn(x):
        out = x.sum(1)
        if len(x) == 2 and x[0, 0] > 100:
            out[1] = np.nan
        return out

    bb = BlackBox(fn, batch_size=2)
    x = torch.arange(12.0).reshape(6, 2)
    x[2, 0] = 200.0  # rows 2-3 form the second batch
    with pytest.raises(MalformedResponseError, match=r"batch 2 of 3 .*NaN"):
        bb(x)
    assert bb.stats["cached"] == 2  # batch 1 kept, the NaN batch not
    with pytest.raises(MalformedResponseError, match="returned 1 rows for 2"):
        BlackBox(lambda x: x[:1].sum(1), batch_size=2)(x)
    with pytest.raises(MalformedResponseError, match="dtype <U"):
        BlackBox(lambda x: ["a"] * len(x))(x)
    with pytest.raises(MalformedResponseError, match="returned a dict"):
        BlackBox(lambda x: {"p": 1})(x)


def test_cache_and_dedup_send_each_distinct_row_once():
    fn = Recorder()
    bb = BlackBox(fn, batch_size=4)
    x = torch.randn(3, 3)
    rows = torch.cat([x, x, x[:1]])  # 7 rows, 3 distinct
    out = bb(rows)
    assert sum(fn.batches) == 3 and bb.queries == 3 and bb.cache_hits == 4
    torch.testing.assert_close(out, rows @ W.T)
    bb(x)
    assert bb.queries == 3 and bb.cache_hits == 7
    # The exact bytes are the key: -0.0 and 0.0 differ, as do dtypes.
    bb(torch.zeros(1, 3))
    bb(-torch.zeros(1, 3))
    bb(torch.zeros(1, 3, dtype=torch.float64))
    assert bb.queries == 6
    nocache = BlackBox(fn, cache=False)
    nocache(x)
    nocache(x)
    assert nocache.queries == 6


def test_additional_arguments_are_split_or_passed_through():
    seen = []

    def fn(x, scale, offset):
        seen.append((x.shape[0], np.shape(scale), offset))
        return x.sum(1) * np.asarray(scale).reshape(-1) + offset

    bb = BlackBox(fn, batch_size=2)
    x = torch.ones(3, 2)
    out = bb(x, torch.tensor([1.0, 2.0, 3.0]), 10.0)
    assert out.tolist() == [12.0, 14.0, 16.0]
    assert seen == [(2, (2,), 10.0), (1, (1,), 10.0)]
    bb(x, torch.tensor([1.0, 2.0, 3.0]), 20.0)  # another offset: another key
    assert bb.queries == 6


def test_transient_errors_are_retried_with_backoff_permanent_ones_are_not():
    state = {"n": 0}

    def flaky(x):
        state["n"] += 1
        if state["n"] % 2:
            raise TransientError("try again")
        return x.sum(1)

    bb = BlackBox(flaky, batch_size=2, backoff=0.001)
    x = torch.arange(8.0).reshape(4, 2)
    torch.testing.assert_close(bb(x), x.sum(1))
    assert bb.retried == 2 and bb.requests == 4 and bb.sent_rows == 8
    assert bb.queries == 4

    def broken(x):
        raise KeyError("no such model")

    bb = BlackBox(broken, backoff=0.001)
    with pytest.raises(PermanentError, match="non-transient KeyError"):
        bb(torch.ones(2, 2))
    assert bb.requests == 1

    def down(x):
        raise TimeoutError("read timed out")

    bb = BlackBox(down, retries=2, backoff=0.001)
    with pytest.raises(PermanentError, match="after 3 attempts"):
        bb(torch.ones(2, 2))
    assert bb.requests == 3 and bb.queries == 0


def test_max_queries_refuses_a_call_before_sending_it():
    fn = Recorder()
    bb = BlackBox(fn, max_queries=5)
    bb(torch.randn(4, 3))
    with pytest.raises(
        QueryBudgetExceeded, match=r"needs 3 new .* 4 of max_queries=5 .* only 1 more"
    ):
        bb(torch.randn(3, 3))
    assert sum(fn.batches) == 4 and bb.queries == 4


def test_concurrency_and_thread_safe_counters():
    active = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(x):
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        time.sleep(0.05)
        with lock:
            active["now"] -= 1
        return x.sum(1)

    bb = BlackBox(slow, batch_size=1, max_concurrency=4)
    x = torch.randn(16, 2)
    torch.testing.assert_close(bb(x), x.sum(1))
    assert 2 <= active["max"] <= 4
    assert bb.queries == 16 and bb.requests == 16


def test_requests_per_second_spaces_requests():
    starts = []
    bb = BlackBox(
        lambda x: starts.append(time.monotonic()) or x.sum(1),
        batch_size=1,
        max_concurrency=3,
        requests_per_second=50,
    )
    t0 = time.monotonic()
    bb(torch.randn(6, 2))
    # Six starts 1/50 s apart: the last cannot begin before 5/50 s (sleeps
    # never end early, so this cannot flake on a slow machine).
    assert len(starts) == 6 and max(starts) - t0 >= 5 / 50


def test_constructor_errors_are_clear():
    with pytest.raises(TypeError, match="callable"):
        BlackBox(3)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        BlackBox(abs, batch_size=0)
    with pytest.raises(TypeError, match="max_concurrency must be an int"):
        BlackBox(abs, max_concurrency=1.5)
    with pytest.raises(ValueError, match="input_format"):
        BlackBox(abs, input_format="pandas")
    with pytest.raises(ValueError, match="requests_per_second"):
        BlackBox(abs, requests_per_second=0)
    with pytest.raises(TypeError, match="cache must be"):
        BlackBox(abs, cache=3)
    with pytest.raises(TypeError, match="dtype"):
        BlackBox(abs, dtype=torch.int64)
    with pytest.raises(TypeError, match="at least one input"):
        BlackBox(abs)()
    with pytest.raises(ValueError, match="0-dimensional"):
        BlackBox(abs)(torch.tensor(1.0))
    with pytest.raises(TypeError, match="complex"):
        BlackBox(abs)(torch.ones(2, 2, dtype=torch.complex64))
    with pytest.raises(TypeError, match="BlackBox takes tensors"):
        BlackBox(abs)([1.0, 2.0])


DTYPES = [
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.int64,
    torch.bool,
]


@given(
    rows=st.integers(0, 5),
    shape=st.lists(st.integers(1, 3), min_size=0, max_size=3),
    dtype=st.sampled_from(DTYPES),
    fmt=st.sampled_from(["numpy", "list", "tensor"]),
    kind=st.sampled_from(["numpy", "list", "tensor"]),
    batch_size=st.one_of(st.none(), st.integers(1, 4)),
    width=st.integers(0, 3),
    wrong_length=st.booleans(),
)
def test_fuzz_conversions(
    rows, shape, dtype, fmt, kind, batch_size, width, wrong_length
):
    """Any shape/dtype/format either gives one float row per input row or a
    clear ValueError/TypeError (MalformedResponseError is a ValueError)."""

    def fn(x):
        if isinstance(x, torch.Tensor):
            x = x.double().numpy()
        a = np.asarray(x, dtype=np.float64).reshape(len(x), -1).sum(1)
        out = a if width == 0 else np.repeat(a[:, None], width, 1)
        if wrong_length:
            out = out[1:]
        return {"numpy": out, "list": out.tolist(), "tensor": torch.from_numpy(out)}[
            kind
        ]

    x = (torch.rand(rows, *shape) * 4).to(dtype)
    bb = BlackBox(fn, batch_size=batch_size, input_format=fmt)
    try:
        out = bb(x)
    except MalformedResponseError as exc:
        assert wrong_length and "batch" in str(exc)
        return
    assert not wrong_length or rows == 0
    assert out.dtype.is_floating_point and out.shape[0] == rows
    if rows == 0:  # nothing is sent, so the answer's row shape is unknown
        assert out.shape == (0,)
        return
    expected = x.double().reshape(rows, math.prod(shape)).sum(1).to(out.dtype)
    got = out if width == 0 else out[:, 0]
    torch.testing.assert_close(got, expected)  # rounded to the output dtype


@pytest.mark.filterwarnings("ignore:Input Tensor 0 has a dtype")
@given(
    method=st.sampled_from(["saliency", "ig", "shap", "smoothgrad"]),
    rows=st.integers(1, 3),
    features=st.integers(1, 4),
    dtype=st.sampled_from([torch.float32, torch.float64, torch.int64]),
    target=st.one_of(
        st.none(),
        st.integers(0, 2),
        st.lists(st.integers(0, 2), min_size=1, max_size=4),
        st.just("float-tensor"),
    ),
    batch_size=st.integers(1, 9),
    max_batch_size=st.integers(1, 9),
    n_steps=st.integers(1, 3),
)
def test_fuzz_attribute_arguments(
    method, rows, features, dtype, target, batch_size, max_batch_size, n_steps
):
    """Every attribute call through a BlackBox works or raises a clear
    ValueError/TypeError (or Captum's own AssertionError for a missing target
    with several outputs, which captum-lr keeps for parity)."""
    x = (torch.rand(rows, features) * 2).to(dtype)
    if target == "float-tensor":
        target = torch.zeros(rows)
    bb = BlackBox(
        lambda a: np.tanh(a @ np.ones((a.shape[1], 3))), batch_size=batch_size
    )
    est = LREstimator(n_samples=4, sigma=0.1, seed=0, max_batch_size=max_batch_size)
    kwargs: dict = {}
    if method == "ig":
        attr = LRIntegratedGradients(bb, estimator=est)
        kwargs = {"n_steps": n_steps}
    elif method == "shap":
        attr = LRGradientShap(bb, estimator=est)
        kwargs = {"baselines": torch.zeros(2, features), "n_samples": n_steps}
    elif method == "smoothgrad":
        attr = NoiseTunnel(LRSaliency(bb, estimator=est))
        kwargs = {"nt_samples": n_steps, "nt_type": "smoothgrad"}
    else:
        attr = LRSaliency(bb, estimator=est)
    try:
        out = attr.attribute(x, target=target, **kwargs)
    except (ValueError, TypeError) as exc:
        assert str(exc)
        return
    except AssertionError as exc:
        assert target is None and "Target not provided" in str(exc)
        return
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert bb.queries == bb.stats["cached"]  # every paid answer cached once


def test_out_of_range_target_is_a_clear_error():
    bb = BlackBox(lambda a: a @ np.ones((a.shape[1], 3)))
    with pytest.raises((ValueError, TypeError)):
        LRSaliency(bb, estimator=LREstimator(n_samples=4, seed=0)).attribute(
            torch.rand(2, 4), target=5
        )


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_outputs_follow_the_inputs_device():
    bb = BlackBox(lambda a: a @ np.ones((a.shape[1], 3)))
    x = torch.rand(2, 4, device="cuda")
    out = bb(x)
    assert out.device == x.device and out.dtype == torch.float32
    est = LREstimator(n_samples=4, seed=0)
    attr = LRSaliency(bb, estimator=est).attribute(x, target=1)
    assert attr.device == x.device


def test_each_new_row_is_decoded_once():
    decoded = []

    def output(rows):
        decoded.append(len(rows))
        return np.asarray(rows, dtype=np.float64)

    bb = BlackBox(Recorder(), batch_size=2, output=output)
    x = torch.randn(5, 3)
    torch.testing.assert_close(bb(torch.cat([x, x[:1]])), torch.cat([x, x[:1]]) @ W.T)
    assert sum(decoded) == 5  # 5 distinct new rows, each decoded once
    decoded.clear()
    bb(x)  # all cached: each decoded once more, in one call of output
    assert decoded == [5]


class HostCopies(torch.Tensor):
    """A tensor that counts the calls moving it (or a part of it) to the host."""

    copies = 0

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.cpu, torch.Tensor.to):
            cls.copies += 1
        return super().__torch_function__(func, types, args, kwargs or {})


def test_inputs_are_copied_to_the_host_once_for_keys_and_batches():
    plain = torch.randn(6, 3)
    x = plain.clone().as_subclass(HostCopies)
    HostCopies.copies = 0
    batches = []

    def fn(a, b):
        batches.append(len(a))
        return a @ W.numpy().T + b.sum(1, keepdims=True)

    out = BlackBox(fn, batch_size=2)(x, x * 2)
    assert batches == [2, 2, 2]
    expected = plain @ W.T + 2 * plain.sum(1, keepdim=True)
    torch.testing.assert_close(out.as_subclass(torch.Tensor), expected)
    assert HostCopies.copies == 2  # one per batched argument, not one per batch


def test_integer_and_boolean_answers_are_not_cast_to_float():
    x = torch.randn(6, 3)
    labels = BlackBox(lambda a: (a[:, 0] > 0).astype(np.int64) + 2 * (a[:, 1] > 0))
    out = labels(x)
    assert out.dtype == torch.int64
    assert out.tolist() == ((x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()).tolist()
    flags = BlackBox(lambda a: [r[0] > 0 for r in a], batch_size=4, input_format="list")
    assert flags(x).dtype == torch.bool and flags(x).tolist() == (x[:, 0] > 0).tolist()
    assert BlackBox(lambda a: [1] * len(a), dtype=torch.float64)(x).dtype == torch.int64
    # Real scores keep the float dtype (the inputs' or dtype=).
    assert BlackBox(lambda a: a.sum(1))(x).dtype == torch.float32
    assert BlackBox(lambda a: a.sum(1), dtype=torch.float64)(x).dtype == torch.float64


def test_a_classifiers_predict_gives_integer_labels():
    linear_model = pytest.importorskip("sklearn.linear_model")
    gen = np.random.default_rng(0)
    data = gen.normal(size=(60, 3))
    clf = linear_model.LogisticRegression().fit(data, (data[:, 0] > 0).astype(int))
    x = torch.from_numpy(data[:5]).float()
    labels = BlackBox(clf.predict)(x)
    assert labels.dtype == torch.int64
    assert labels.tolist() == clf.predict(data[:5].astype(np.float32)).tolist()


def test_a_failed_batch_releases_its_reservation_paid_rows_stay_counted():
    def fn(x):
        if x[0, 0] > 100:
            raise KeyError("no such row")
        return x.sum(1)

    bb = BlackBox(fn, batch_size=2, max_queries=4)
    x = torch.arange(8.0).reshape(4, 2)
    x[2, 0] = 200.0  # the second batch fails for good
    with pytest.raises(PermanentError, match="batch 2 of 2"):
        bb(x)
    assert bb.queries == 2 and bb.stats["cached"] == 2
    # The failed batch's two rows went back to the budget: two new rows fit.
    torch.testing.assert_close(bb(x[:2] + 1), (x[:2] + 1).sum(1))
    assert bb.queries == 4
    with pytest.raises(QueryBudgetExceeded, match="only 0 more fit"):
        bb(x[:1] + 5)
    assert bb(x[:2]).tolist() == x[:2].sum(1).tolist()  # cached rows are free


def test_malformed_answers_are_paid_but_not_cached():
    bb = BlackBox(lambda x: np.full(len(x), np.nan), max_queries=3)
    x = torch.arange(4.0).reshape(2, 2)
    with pytest.raises(MalformedResponseError, match="NaN"):
        bb(x)
    assert bb.queries == 2 and bb.stats["cached"] == 0
    with pytest.raises(QueryBudgetExceeded, match="only 1 more"):
        bb(x)


def test_answers_stay_cached_when_the_output_converter_itself_fails():
    def not_ready(rows):
        raise RuntimeError("scorer not loaded")

    fn = Recorder()
    bb = BlackBox(fn, output=not_ready)
    x = torch.randn(3, 3)
    with pytest.raises(RuntimeError, match="scorer not loaded"):
        bb(x)
    bb.output = None  # back to plain numbers: the paid answers are reused
    torch.testing.assert_close(bb(x), x @ W.T)
    assert sum(fn.batches) == 3 and bb.queries == 3 and bb.cache_hits == 3
    with pytest.raises(TypeError, match="output must be callable"):
        bb.output = "numbers"
    with pytest.raises(ValueError, match="max_queries must be at least 0"):
        bb.max_queries = -1
    with pytest.raises(AttributeError, match="counter"):
        bb.queries = 0
