"""A narrower copy of a trained face model, to start a smaller student from (#35: a face view in <= 1.5 ms on a
CPU without an int8 dot product).

The shipped fp32 ONNX model (``train_face.build_model`` at some width, its BatchNorm folded into the convolutions
by the export) is cut to a smaller width: each convolution keeps the output channels that carry the most, judged
on real faces (a channel's mean activation after its ReLU times the size of the weights that read it in the next
layer), and the layer after keeps only the inputs that remain. The BatchNorm layers of the torch model are then
set so that, on a batch of those faces, each reproduces the folded bias exactly: in training mode the copy starts
where the pruned network is, not at a random point. Training it on with the full model as its teacher
(``train_face.py --init-from``) recovers what the cut lost in far fewer draws than a student from scratch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def folded_weights(path: Path) -> tuple[list[tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """The convolutions' (weight, bias) in graph order and the final linear layer's, from an fp32 ONNX file."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    init = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [(init[n.input[1]], init[n.input[2]]) for n in model.graph.node if n.op_type == "Conv"]
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    return convs, (init[gemm.input[1]], init[gemm.input[2]])


def pruned(path: Path, student, faces: np.ndarray):  # type: ignore[no-untyped-def]
    """``student`` (a fresh ``train_face.build_model`` at a smaller width) given the most useful channels of the
    model at ``path``; ``faces`` (N, 1, 48, 48, standardised, a few hundred) judge the channels and set the
    BatchNorm layers."""
    import torch
    from torch import nn

    convs, (lin_w, lin_b) = folded_weights(path)
    s_convs = [m for m in student if isinstance(m, nn.Conv2d)]
    s_bns = [m for m in student if isinstance(m, nn.BatchNorm2d)]
    if len(s_convs) != len(convs):
        raise ValueError(f"{path}: {len(convs)} convolutions, the student has {len(s_convs)}")
    pooled = set()  # the convolutions build_model pools after (the full model is built alike)
    seen = 0
    for m in student:
        seen += isinstance(m, nn.Conv2d)
        if isinstance(m, nn.MaxPool2d):
            pooled.add(seen - 1)

    # The full model's activations after each ReLU, layer by layer.
    x = torch.from_numpy(np.ascontiguousarray(faces, np.float32))
    acts: list[torch.Tensor] = []
    with torch.no_grad():
        h = x
        for i, (w, b) in enumerate(convs):
            h = torch.relu(nn.functional.conv2d(h, torch.tensor(w), torch.tensor(b), padding=1))
            acts.append(h.mean((0, 2, 3)))
            if i in pooled:
                h = nn.functional.max_pool2d(h, 2)

    keep: list[np.ndarray] = []
    for i, conv in enumerate(s_convs):
        reader = convs[i + 1][0] if i + 1 < len(convs) else lin_w[:, :, None, None]
        importance = acts[i].numpy() * np.sqrt((reader.astype(np.float64) ** 2).sum((0, 2, 3)))
        keep.append(np.sort(np.argsort(-importance)[: conv.out_channels]))

    with torch.no_grad():
        h = x
        prev = np.arange(1)
        for i, (conv, bn) in enumerate(zip(s_convs, s_bns, strict=True)):
            w, b = convs[i]
            conv.weight.copy_(torch.tensor(w[keep[i]][:, prev]))
            y = conv(h)
            mu, var = y.mean((0, 2, 3)), y.var((0, 2, 3), unbiased=False)
            # train-mode BN(y) = gamma (y - mu) / sqrt(var + eps) + beta = y + b on this batch
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.bias.copy_(mu + torch.tensor(b[keep[i]]))
            bn.running_mean.copy_(mu)
            bn.running_var.copy_(var)
            h = torch.relu(bn.eval()(y))
            if i in pooled:
                h = nn.functional.max_pool2d(h, 2)
            prev = keep[i]
        linear = next(m for m in student if isinstance(m, nn.Linear))
        linear.weight.copy_(torch.tensor(lin_w[:, prev]))
        linear.bias.copy_(torch.tensor(lin_b))
    return student.train()
