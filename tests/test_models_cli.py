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
    assert main(["models", "info", str(pt)]) == 0
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
