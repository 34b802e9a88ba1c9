"""`csnln models`: list, info, convert."""

from __future__ import annotations

import json

import torch
from reference import ReferenceCSNLN

import csnln
from csnln.cli import main


def test_list_info_convert(tmp_path, capsys) -> None:
    assert main(["models"]) == 0
    pt = tmp_path / "model_x3.pt"
    torch.save(ReferenceCSNLN(3, n_feats=4, depth=2).state_dict(), pt)
    capsys.readouterr()
    assert main(["models", "info", str(pt), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["config"]["scale"] == 3 and info["config"]["depth"] == 2
    out = tmp_path / "m.safetensors"
    assert main(["models", "convert", str(pt), str(out)]) == 0
    x = torch.rand(1, 3, 6, 6)
    with torch.no_grad():
        assert torch.equal(csnln.load_checkpoint(out)(x), csnln.load_official(pt)(x))
    assert main(["models", "convert", str(pt), str(out)]) == 2  # no overwrite
    assert "exists" in capsys.readouterr().err
    assert main(["models", "info", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in capsys.readouterr().err


def test_bundled_model_info_and_listing(capsys) -> None:
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "small" in listing and "x2" in listing and "yes" in listing  # the default
    assert main(["models", "info", "small", "--json"]) == 0
    infos = json.loads(capsys.readouterr().out)
    assert [i["scale"] for i in infos] == [2, 3, 4]
    assert all(i["cpu_tile_plan"]["tile"] >= 16 for i in infos)
    assert main(["models", "info", "small", "--scale", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["scale"] == 3


def test_load_model_without_scale_names_the_scales() -> None:
    import pytest

    with pytest.raises(ValueError, match=r"x2, x3, x4\): give a scale"):
        csnln.zoo.load_model("small")
