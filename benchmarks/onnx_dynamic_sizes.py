"""Why `csnln export` writes fixed tiles: the bundled x2 in export mode traced by the dynamo
exporter with a dynamic batch, height and width, then run by onnxruntime at other sizes and
compared with PyTorch.

    python benchmarks/onnx_dynamic_sizes.py

Its output is kept in benchmarks/results/onnx_dynamic_sizes.md. Needs the onnx extra.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import csnln  # noqa: E402


def main() -> int:
    import onnxruntime as ort

    model = csnln.zoo.load_model("small", 2).eval()
    model.set_export_mode(True)
    batch = torch.export.Dim("batch", min=1, max=256)
    h, w = torch.export.Dim("h", min=8, max=512), torch.export.Dim("w", min=8, max=512)
    program = torch.onnx.export(
        model,
        (torch.rand(2, 3, 32, 32),),
        dynamo=True,
        dynamic_shapes={"x": {0: batch, 2: h, 3: w}},
        input_names=["input"],
        output_names=["output"],
        opset_version=18,
    )
    model.set_export_mode(False)
    buffer = io.BytesIO()
    program.save(buffer)  # type: ignore[union-attr]
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    print("exported input shape:", [(i.name, i.shape) for i in session.get_inputs()])
    for n, hh, ww in ((1, 32, 32), (2, 33, 31), (3, 40, 24), (1, 17, 45), (2, 32, 40)):
        x = torch.rand(n, 3, hh, ww)
        with torch.no_grad():
            expected = model(x).numpy()
        try:
            got = session.run(None, {"input": x.numpy()})[0]
        except Exception as exc:  # onnxruntime's own error, shortened
            print(f"{n} x {hh} x {ww}: onnxruntime refused: {str(exc).splitlines()[0][:90]}")
            continue
        if got.shape != expected.shape:
            print(f"{n} x {hh} x {ww}: wrong shape {got.shape}, expected {expected.shape}")
        else:
            print(f"{n} x {hh} x {ww}: max abs difference {np.abs(got - expected).max():.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
