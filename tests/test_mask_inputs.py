"""LRMaskGradient takes what Captum's perturbation methods take: one feature
mask per example, integer and boolean inputs (masked by selection, no noise);
and it refuses what it cannot use with errors that say what to change.

References are Captum's FeatureAblation (exact Banzhaf values for outputs
additive in the groups) and single-row calls.
"""

import numpy as np
import pytest
import torch
from captum.attr import FeatureAblation, NoiseTunnel

from captum_lr import Grid, LRMaskGradient, blur_baseline


def embedding_model(vocab=50, width=3, seed=0):
    """A bag-of-embeddings score of token ids: additive in the tokens."""
    table = torch.randn(vocab, width, generator=torch.Generator().manual_seed(seed))
    seen = []

    def f(ids):
        seen.append(ids)
        assert ids.dtype == torch.long  # never cast to float or perturbed
        return table[ids].sum((1, 2))

    f.seen = seen
    return f


def test_integer_inputs_keep_their_dtype_and_match_feature_ablation():
    f = embedding_model()
    x = torch.randint(1, 50, (3, 6))
    mask = torch.tensor([0, 0, 1, 2, 2, 3])
    explainer = LRMaskGradient(f, seed=0)
    attr = explainer.attribute(x, baselines=0, feature_mask=mask, n_samples=8)
    assert attr.dtype == torch.float32 and attr.shape == x.shape
    want = FeatureAblation(f).attribute(x, baselines=0, feature_mask=mask)
    torch.testing.assert_close(attr, want)  # additive, one complete block: exact
    for rows in f.seen[-explainer.queries // 3 :]:  # every query: x or 0
        assert ((rows == 0) | (rows == x.repeat(rows.shape[0] // 3, 1))).all()


def test_per_example_feature_masks_match_feature_ablation_and_single_rows():
    f = embedding_model(seed=1)
    x = torch.randint(1, 50, (4, 6))
    shared = torch.tensor([0, 0, 1, 1, 2, 2])
    # the case: a shared mask repeated per row used to be refused
    repeated = LRMaskGradient(f, seed=3).attribute(
        x, feature_mask=shared.repeat(4, 1), n_samples=16
    )
    once = LRMaskGradient(f, seed=3).attribute(x, feature_mask=shared, n_samples=16)
    torch.testing.assert_close(repeated, once)
    # each row its own groups (3 per row, so the rows share the design)
    per_row = torch.stack([torch.randperm(6) % 3 for _ in range(4)])
    attr = LRMaskGradient(f, seed=3).attribute(x, feature_mask=per_row, n_samples=16)
    want = FeatureAblation(f).attribute(x, feature_mask=per_row)
    torch.testing.assert_close(attr, want)
    for i in range(4):
        alone = LRMaskGradient(f, seed=3).attribute(
            x[i : i + 1], feature_mask=per_row[i], n_samples=16
        )
        torch.testing.assert_close(attr[i : i + 1], alone)
    # rows with different numbers of groups and sparse ids
    uneven = torch.tensor([[7, 7, 7, 7, 7, 7], [0, 1, 2, 3, 4, 5], [9, 2, 9, 2, 9, 2]])
    attr = LRMaskGradient(f, seed=0).attribute(x[:3], feature_mask=uneven, n_samples=16)
    torch.testing.assert_close(
        attr, FeatureAblation(f).attribute(x[:3], feature_mask=uneven)
    )


def test_per_example_masks_of_tuple_inputs_and_noise_tunnel():
    w = torch.randn(2, 5)

    def model(a, b):
        return (a * w[0]).sum(1) + (b * w[1]).sum(1)

    a, b = torch.randn(3, 5), torch.randn(3, 5)
    masks = (torch.randint(0, 3, (3, 5)), torch.randint(2, 5, (1, 5)))
    got = LRMaskGradient(model, seed=0).attribute(
        (a, b), feature_mask=masks, n_samples=16
    )
    want = FeatureAblation(model).attribute((a, b), feature_mask=masks)
    for g, t in zip(got, want):
        torch.testing.assert_close(g, t)
    # NoiseTunnel repeats per-example masks along with the inputs
    nt = NoiseTunnel(LRMaskGradient(model, seed=0)).attribute(
        (a, b), nt_samples=2, stdevs=0.1, feature_mask=masks, n_samples=8
    )
    assert [t.shape for t in nt] == [a.shape, b.shape]


def test_boolean_and_mixed_integer_float_inputs_are_selected_exactly():
    big = 2**40 + 7  # not a float32: the masked rows must not pass through one
    ids = torch.tensor([[big, big + 1, 3], [5, big + 2, 9]])
    flags = torch.tensor([[True, False], [True, True]])
    feats = torch.randn(2, 2, dtype=torch.float16)
    sent = []

    def model(i, m, z):
        assert i.dtype == torch.long and m.dtype == torch.bool
        assert z.dtype == torch.float16
        sent.append(i)
        return (i % 1000).double().sum(1) + 10 * m.double().sum(1) + z.double().sum(1)

    attr = LRMaskGradient(model, seed=0).attribute(
        (ids, flags, feats), baselines=(1, False, 0.0), n_samples=16
    )
    assert [t.dtype for t in attr] == [torch.float32, torch.float32, torch.float16]
    values = torch.cat(sent)
    assert ((values == 1) | (values % 2**40 < 10)).all()  # x or the baseline, exact
    torch.testing.assert_close(attr[0], ((ids % 1000) - 1).float())
    torch.testing.assert_close(attr[1], 10 * flags.float())
    torch.testing.assert_close(attr[2], feats, atol=1e-2, rtol=1e-2)


def test_integer_inputs_need_whole_baselines():
    x = torch.randint(0, 255, (2, 3, 8, 8), dtype=torch.uint8)
    f = lambda z: z.float().mean((1, 2, 3))  # noqa: E731
    with pytest.raises(ValueError, match=r"round\(\)"):
        LRMaskGradient(f).attribute(x, baselines=blur_baseline(x), n_samples=4)
    with pytest.raises(ValueError, match="cannot hold"):
        LRMaskGradient(f).attribute(x, baselines=-1, n_samples=4)
    base = blur_baseline(x).round().to(x.dtype)
    attr = LRMaskGradient(f, seed=0).attribute(
        x, baselines=base, feature_mask=Grid(2), n_samples=8
    )
    assert attr.dtype == torch.float32


def test_noise_tunnel_with_a_grid_says_to_pass_its_tensor_mask():
    def model(z):
        return z.flatten(1).sum(1)

    x = torch.randn(2, 3, 8, 8)
    # used to fail in Captum's bare assertion ("`inputs` must be a torch.Tensor")
    with pytest.raises(TypeError, match=r"NoiseTunnel.*tensor_mask\(inputs, Grid"):
        NoiseTunnel(LRMaskGradient(model)).attribute(
            x, nt_samples=2, feature_mask=Grid(4), n_samples=4
        )
    mask = LRMaskGradient.tensor_mask(x, Grid(4))
    assert mask.shape == (1, 3, 8, 8) and mask.dtype == torch.long
    cell = (torch.arange(8) // 2).view(8, 1) * 4 + torch.arange(8) // 2
    assert torch.equal(mask, cell.expand(1, 3, 8, 8))
    nt = NoiseTunnel(LRMaskGradient(model, seed=0)).attribute(
        x, nt_samples=2, stdevs=0.1, feature_mask=mask, n_samples=32
    )
    grid = LRMaskGradient(model, seed=0).attribute(
        x, feature_mask=Grid(4), n_samples=32
    )
    assert nt.shape == grid.shape
    pair = LRMaskGradient.tensor_mask((x, torch.randn(2, 6)), Grid(2))
    assert [m.shape for m in pair] == [(1, 3, 8, 8), (1, 6)]
    assert int(pair[1].min()) == int(pair[0].max()) + 1  # groups differ per input
    with pytest.raises(TypeError, match="Grid or GroupPrior"):
        LRMaskGradient.tensor_mask(x, mask)


def test_errors_say_what_to_change_without_printing_tensors():
    f = lambda z: z.sum(1)  # noqa: E731
    x = torch.randn(2, 4)
    explainer = LRMaskGradient(f)
    cases = [
        (dict(inputs=[x]), TypeError, "tuple of tensors"),
        (dict(inputs=x.numpy()), TypeError, r"torch.as_tensor"),
        (dict(inputs=x.tolist()), TypeError, r"torch.as_tensor"),
        (dict(inputs=x, baselines=torch.zeros(5, 4)), ValueError, r"\(1, 4\)"),
        (dict(inputs=x, baselines=torch.zeros(2, 2, 4)), ValueError, "broadcast"),
        (dict(inputs=x, baselines=np.zeros(4)), TypeError, r"torch.as_tensor"),
        (dict(inputs=x, baselines=[0.0] * 4), TypeError, "tuple"),
        (dict(inputs=x, feature_mask=torch.zeros(3, 4).long()), ValueError, "rows"),
        (dict(inputs=x, feature_mask=torch.zeros(5).long()), ValueError, "broadcast"),
        (dict(inputs=x, feature_mask=torch.zeros(4)), ValueError, "integer"),
        (dict(inputs=x, feature_mask=[torch.zeros(4).long()]), TypeError, "tuple"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match) as info:
            explainer.attribute(**kwargs, n_samples=4)
        message = str(info.value)
        assert "tensor([" not in message and len(message) < 300, message
    # NumPy scalars are numbers, as in Captum
    got = LRMaskGradient(f, seed=0).attribute(x, baselines=np.float32(0.5), n_samples=8)
    torch.testing.assert_close(got, x - 0.5)


def test_label_outputs_are_refused_with_a_pointer_to_label_indicator():
    # a forward that returns class indices must not give a map of class indices;
    # the shared query runner refuses integer and boolean outputs
    x = torch.randn(3, 4)
    for forward in (lambda t: t.argmax(1), lambda t: t[:, 0] > 0):
        with pytest.raises((TypeError, ValueError), match="LabelIndicator"):
            LRMaskGradient(forward, seed=0).attribute(x, n_samples=4)
