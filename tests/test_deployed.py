"""Deployed models (tutorial 07, benchmarks/deployed.py): a model exported to
ONNX and run by ONNX Runtime through BlackBox, and an int8 model from PyTorch's
post-training quantization, explained with and without its float source as
Surrogate. Offline, seeded, on a tiny CNN."""

from __future__ import annotations

import warnings

import pytest
import torch
from captum.attr import Saliency

from captum_lr import BlackBox, LREstimator, LRSaliency, Surrogate
from captum_lr.metrics import cosine


def _tiny_cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU6(),
        torch.nn.Conv2d(8, 8, 3, stride=2, padding=1),
        torch.nn.ReLU6(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 5),
    ).eval()


def _inputs() -> torch.Tensor:
    return torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def test_onnx_runtime_saliency_matches_autograd(tmp_path):
    # the TorchScript-based exporter: a second here, where the default
    # torch.export-based one (dynamo=True, needs onnxscript) takes 4-10 s for
    # the same graph (checked by hand on this model and on efficientnet-lite0)
    ort = pytest.importorskip("onnxruntime")
    model, x = _tiny_cnn(), _inputs()
    path = str(tmp_path / "tiny.onnx")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (x,),
            path,
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "batch"}},
            dynamo=False,
        )
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    api = BlackBox(lambda a: session.run(["y"], {"x": a})[0], batch_size=64)
    with torch.no_grad():
        assert torch.allclose(api(x), model(x), atol=1e-5)
    est = LREstimator(n_samples=192, seed=0)  # d = 192: an exact sweep
    attr = LRSaliency(api, estimator=est).attribute(x, target=2, abs=False)
    grad = Saliency(model).attribute(x, target=2, abs=False)
    assert est.last_design == "coordinate"
    assert (cosine(attr, grad) > 0.999).all()
    assert api.queries == est.queries + len(x)  # the rows of the output check


def _int8(model: torch.nn.Module, calib: torch.Tensor) -> torch.nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    engines = torch.backends.quantized.supported_engines
    engine = next(e for e in ("onednn", "qnnpack", "x86", "fbgemm") if e in engines)
    torch.backends.quantized.engine = engine
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(
            model, get_default_qconfig_mapping(engine), example_inputs=(calib[:1],)
        )
        with torch.no_grad():
            prepared(calib)
        return convert_fx(prepared)


@pytest.mark.skipif(
    not set(torch.backends.quantized.supported_engines)
    & {"onednn", "qnnpack", "x86", "fbgemm"},
    reason="no quantized CPU engine in this torch build",
)
def test_int8_model_explained_with_and_without_its_source():
    source, x = _tiny_cnn(), _inputs()
    calib = torch.rand(16, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    int8 = _int8(source, calib)
    assert any("quantized" in type(m).__module__ for m in int8.modules())

    def deployed(z):
        with torch.no_grad():
            return int8(z)

    with torch.no_grad():
        assert (deployed(x) - source(x)).abs().max() < 0.5
    grad = Saliency(source).attribute(x, target=1, abs=False)
    maps = {}
    for name, prior in (("plain", None), ("surrogate", Surrogate(source))):
        est = LREstimator(n_samples=32, sigma=0.05, prior=prior, seed=0)
        sal = LRSaliency(deployed, estimator=est)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            maps[name] = sal.attribute(x, target=1, abs=False)
        assert maps[name].shape == x.shape
        assert torch.isfinite(maps[name]).all()
        assert sal.queries == est.queries_for(x)
        if prior is not None:
            assert est.last_prior_cosine is not None
            assert est.last_prior_cosine.shape == (len(x),)
    # the surrogate's row brings the float gradient's direction into the map
    assert cosine(maps["surrogate"], grad).mean() > cosine(maps["plain"], grad).mean()


def test_deployed_benchmark_smoke(tmp_path, monkeypatch):
    """benchmarks/deployed.py at 32 px, one photo, tiny budgets."""
    pytest.importorskip("efficientnet_lite_pytorch")
    import json
    import sys

    from benchmarks import deployed

    out = tmp_path / "deployed"
    argv = ["deployed", "--images", "chelsea", "--px", "32", "--budgets", "10"]
    argv += ["--reference-pairs", "32", "--threads", "1", "--out", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        deployed.main()
    data = json.loads(out.with_suffix(".json").read_text())
    assert set(data["models"]) == {"static", "weights"}
    methods = {(r["model"], r["method"]) for r in data["records"]}
    assert ("static", "combination_smoothed") in methods
    assert ("weights", "combination") in methods
    assert all(r["rows"] <= r["budget"] for r in data["records"])
    assert data["settings"]["reference_rows_int8"] == 64
    # the tables of both models, means and per photo, in the results
    assert data["table"].count("default / comb @ 10") == 2
    assert "| chelsea " in data["table"]
