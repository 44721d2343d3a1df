"""The faithfulness benchmark merges parts that split the methods (a new row
scored on the photos of a committed table) as well as parts that split the
photos."""

import json

import pytest


def run(faithfulness, out, methods):
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
            "--classes",
            "",
            "--out",
            str(out),
            "--methods",
            methods,
        ]
    )
    return json.loads(out.with_suffix(".json").read_text())


def test_merge_of_parts_with_other_methods_on_the_same_photos(tmp_path):
    from benchmarks import faithfulness

    peers = run(faithfulness, tmp_path / "peers", "RISE")
    ours = run(faithfulness, tmp_path / "ours", "LRMaskGradient (blur) [grid14, logit]")
    merged = tmp_path / "merged"
    names = f"{tmp_path / 'peers'},{tmp_path / 'ours'}"
    faithfulness.main(
        ["--merge", names, "--images", "chelsea", "--px", "32", "--out", str(merged)]
    )
    joined = json.loads(merged.with_suffix(".json").read_text())
    refs = [r for r in joined["records"] if r["budget"] is None]
    assert refs == [r for r in peers["records"] if r["budget"] is None]
    scored = {r["method"] for r in joined["records"] if r["budget"] == 60}
    assert scored == {"RISE", "LRMaskGradient (blur) [grid14, logit]"}
    assert [p["command"] for p in joined["parts"]] == [
        peers["command"],
        ours["command"],
    ]
    assert "Per photo at 60 rows" in joined["table"] and "RISE" in joined["table"]
    with pytest.raises(SystemExit, match="in two parts"):
        faithfulness.main(
            ["--merge", f"{names},{tmp_path / 'ours'}", "--px", "32", "--out", "x"]
        )
