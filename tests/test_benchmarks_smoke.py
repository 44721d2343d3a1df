"""A CPU smoke run of every benchmark command: tiny budgets, 32 px, one photo.

Keeps the commands working; the committed results come from the full runs
documented in benchmarks/README.md."""

import json

import pytest

pytest.importorskip("efficientnet_lite_pytorch")


def read(path):
    return json.loads(path.read_text())


def test_accuracy_smoke(tmp_path):
    from benchmarks import accuracy

    out = tmp_path / "acc"
    accuracy.main(
        [
            "--images",
            "chelsea",
            "--px",
            "32",
            "--budgets",
            "20,60",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    data = read(out.with_suffix(".json"))
    methods = {r["method"] for r in data["records"]}
    assert {"NES", "RGF", "RGF-orth", "GEEX-style", "captum_lr:default"} <= methods
    over = [r for r in data["records"] if r["rows"] > r["budget"]]
    assert not over, over
    assert out.with_suffix(".png").exists()
    accuracy.main(
        [
            "--linear",
            "--linear-budgets",
            "1000",
            "--reps",
            "4",
            "--out",
            str(tmp_path / "lin"),
        ]
    )
    lin = read(tmp_path / "lin.json")
    orth = [
        r
        for r in lin["records"]
        if r["design"].startswith("orthogonal") and r["n"] == 1000
    ]
    assert orth[0]["ratio"] >= 0.97
    assert any(r["design"].startswith("quasi-random") for r in lin["records"])


@pytest.mark.parametrize("copies", [1, 10])
def test_budget_to_samples_uses_queries_for(copies):
    import torch

    from benchmarks.common import estimator_for_budget
    from captum_lr.estimation.presets import FIXED_SAMPLES, PRESETS, make_estimator

    z = torch.zeros(copies, 3, 16, 16)
    for name in PRESETS:
        for budget in (25, 400, 1001):
            est = estimator_for_budget(name, z, budget)
            if est is None:
                one = make_estimator(
                    name, **({} if name in FIXED_SAMPLES else {"n_samples": 1})
                )
                assert one.queries_for(z) > budget
                continue
            assert est.queries_for(z) <= budget
            if name not in FIXED_SAMPLES and est.samples_per_row(z) == est.n_samples:
                more = make_estimator(name, n_samples=est.n_samples + 1)
                assert more.queries_for(z) > budget


def test_faithfulness_smoke(tmp_path):
    from benchmarks import faithfulness

    out = tmp_path / "faith"
    faithfulness.main(
        [
            "--images",
            "chelsea",
            "--px",
            "32",
            "--budgets",
            "60",
            "--subsets",
            "8",
            "--threads",
            "1",
            "--out",
            str(out),
            "--classes",
            "saliency=default+grid14",
            "--methods",
            "LRSaliency [default];LRSaliency [grid14];RISE;Occlusion (black);"
            "LRMaskGradient (blur) [grid14]",
        ]
    )
    data = read(out.with_suffix(".json"))
    got = {r["method"] for r in data["records"]}
    assert {
        "LRSaliency [default]",
        "LRMaskGradient (blur) [grid14]",
        "RISE",
        "Occlusion (black)",
        "white-box Saliency",
    } <= got
    assert all(r["rows"] <= 60 for r in data["records"] if r["budget"])
    # grid14's sweep (197 rows) does not fit in 60: skipped, never overspent
    assert "LRSaliency [grid14]" not in got
    assert out.with_suffix(".png").exists()
    assert "paired on the photos both scored" in data["table"]
    merged = tmp_path / "merged"
    faithfulness.main(
        ["--merge", str(out), "--images", "chelsea", "--px", "32", "--out", str(merged)]
    )
    joined = read(merged.with_suffix(".json"))
    assert joined["records"] == data["records"]
    assert joined["parts"][0]["command"] == data["command"]
    from benchmarks.report import digest

    text = digest(tmp_path)
    assert "## faith" in text and data["command"] in text
    from benchmarks.report import update_readme

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\nend\n")
    update_readme(readme, tmp_path)
    block = readme.read_text()
    assert block.startswith("intro\n") and block.endswith("end\n")
    assert "old" not in block and "Best insertion" in block
    assert "![faith](results/faith.png)" in block


def test_speed_smoke(tmp_path):
    from benchmarks import speed

    out = tmp_path / "speed"
    speed.main(
        [
            "--px",
            "32",
            "--budgets",
            "16,32",
            "--batch-sizes",
            "8",
            "--memory-samples",
            "8,32",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    data = read(out.with_suffix(".json"))
    assert len(data["records"]) == 2 and len(data["memory"]) == 2
    assert all(r["mask_ratio"] > 0 for r in data["records"])
    assert out.with_suffix(".png").exists()


def test_accuracy_per_photo_table_and_merge(tmp_path):
    from benchmarks import accuracy

    names = []
    for photo in ("chelsea", "coffee"):
        name = str(tmp_path / f"part_{photo}")  # a path: results stay out of git
        names.append(name)
        accuracy.main(
            [
                "--images",
                photo,
                "--px",
                "32",
                "--budgets",
                "40",
                "--methods",
                "captum_lr:default,NES,sweep:orthogonal@0.0001,sweep:orthogonal@1e-05",
                "--threads",
                "1",
                "--out",
                name,
            ]
        )
    merged_path = str(tmp_path / "m")
    accuracy.main(
        ["--merge", ",".join(names), "--images", "tune", "--out", merged_path]
    )
    merged = read(tmp_path / "m.json")
    assert merged["images"] == ["chelsea", "coffee"] and merged["complete"]
    assert len(merged["parts"]) == 2
    table = merged["per_photo_table"]
    assert "chelsea" in table and "coffee" in table and "default / NES" in table


def test_noise_tunnel_smoke(tmp_path):
    from benchmarks import noise_tunnel

    out = tmp_path / "nt"
    noise_tunnel.main(
        [
            "--images",
            "chelsea",
            "--px",
            "32",
            "--n-samples",
            "16",
            "--nt-samples",
            "1,2",
            "--threads",
            "1",
            "--out",
            str(out),
        ]
    )
    data = read(out.with_suffix(".json"))
    assert len(data["records"]) == 4
    assert {r["shared_noise"] for r in data["records"]} == {True, False}


def test_mask_tuning_smoke(tmp_path):
    from benchmarks import mask_tuning

    out = tmp_path / "tuning"
    common = ["--images", "chelsea", "--px", "32", "--seeds", "0", "--threads", "1"]
    # 700 rows: keep_prob (0.25, 0.5, 0.75) fits a regression on 196 cells
    mask_tuning.main(common + ["--budgets", "700", "--out", str(out)])
    data = read(out.with_suffix(".json"))
    got = {r["method"] for r in data["records"]}
    offline = set(mask_tuning.OFFLINE.split(";"))
    assert set(mask_tuning.PEERS) | {"default"} | offline | set(mask_tuning.API) == got
    assert all(r["rows"] <= 700 for r in data["records"])
    assert all("ins_minus_del" in r or r.get("constant") for r in data["records"])
    assert "paired on photo and seed" in data["table"] and "asin" in data["note"]
    # the same table from the records as jsonl
    folder = tmp_path / "records"
    folder.mkdir()
    lines = [json.dumps(r) for r in data["records"]]
    (folder / "a.jsonl").write_text("\n".join(lines + lines[:2]) + "\n")
    again = tmp_path / "again"
    mask_tuning.main(
        common
        + ["--budgets", "700", "--from-records", str(folder), "--out", str(again)]
    )
    from_records = read(again.with_suffix(".json"))
    assert from_records["table"] == data["table"]
    assert "2 records were in the jsonl twice" in from_records["note"]


def test_mask_tuning_two_scale_smoke(tmp_path):
    from benchmarks import mask_tuning

    out = tmp_path / "two"
    args = ["--images", "chelsea", "--px", "32", "--seeds", "0", "--threads", "1"]
    args += ["--budgets", "200", "--parts", "twoscale", "--out", str(out)]
    mask_tuning.main(args)
    data = read(out.with_suffix(".json"))
    got = {r["method"]: r for r in data["records"]}
    assert set(got) == {
        f"2scale c{c} w{w}" for c, ws in mask_tuning.TWO_SCALE.items() for w in ws
    }
    assert all(0 < r["rows"] <= 200 for r in got.values())
    assert "Grid(7)" in data["note"]


def test_seed_spread_tables_a_peer_against_itself(tmp_path):
    from benchmarks import seed_spread

    def run(name, ours, peer):
        recs = [
            {"image": img, "method": m, "budget": 1000, "ins_minus_del": v}
            for m, values in ((seed_spread.METHOD, ours), (seed_spread.PEER, peer))
            for img, v in values.items()
        ]
        (tmp_path / f"{name}.json").write_text(json.dumps({"records": recs}))
        return f"{tmp_path / name}:{len(list(tmp_path.glob('*.json'))) - 1}"

    runs = [
        run("s0", {"a": 0.5, "b": 0.3}, {"a": 0.6, "b": 0.3}),
        run("s1", {"a": 0.5, "b": 0.4}, {"a": 0.4, "b": 0.3}),
    ]
    out = tmp_path / "spread"
    seed_spread.main(["--runs", ",".join(runs), "--budgets", "1000", "--out", str(out)])
    data = read(out.with_suffix(".json"))
    # a: ours - peer = -0.1, +0.1 (mean 0); b: 0, +0.1 (mean +0.05)
    assert data["summary"]["1000"]["behind"] == 0
    # the peer at seed 1 is 0.2 behind its seed 0 on a
    assert data["summary"]["1000"]["peer"] == {"1": ["a"]}
    assert "| a " in data["table"] and "+0.000 ± 0.100" in data["table"]


def test_surrogate_summary_tables_means_and_photos():
    from benchmarks import surrogate

    records = [
        {"image": img, "method": m, "budget": b, "cosine": v, "surrogate_cosine": c}
        for img, c, values in (("a", 0.1, (0.2, 0.3)), ("b", 0.3, (0.4, 0.4)))
        for b in (10,)
        for m, v in zip(("default", "surrogate"), values)
    ]
    out = surrogate.summarise(records, [10])
    (row,) = out["summary"]
    assert row["default"][0] == pytest.approx(0.3)
    assert row["gain_over_default"][0] == pytest.approx(0.05)
    assert "0.050 +- 0.050" in out["table"]
    assert "| a " in out["table"] and "0.200 / 0.300" in out["table"]
