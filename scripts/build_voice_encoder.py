"""Build the voice encoder: Resemblyzer's GE2E speaker encoder (Apache-2.0) as int8 ONNX.

The PyPI wheel ``Resemblyzer==0.1.4`` carries ``resemblyzer/pretrained.pt``: a 3-layer LSTM (256
units) over 40-band mel frames with a linear + ReLU + L2-norm head, trained for speaker
verification (Wan et al. 2018); here its top layer reads the layer below in 20 ms steps (``Encoder``).
The package pulls in torch and librosa, so it is never installed:
this script downloads the wheel with ``pip download --no-deps``, loads the weights into the same network
in torch (the ``[train]`` extra), exports it to ONNX with two outputs (the speaker embedding; and the
emotion head's input: the last layer's outputs averaged over time, every layer's final state and the
lower two layers' outputs averaged over time, 1,536 values) with a dynamic batch and frame count,
quantizes it (``quantize``: the upper two LSTM layers in int8 arithmetic, the rest int8 weights in float
arithmetic), checks the int8 model against torch on espeak-ng speech, and writes
models/voice_encoder_int8.onnx and the licence.

    pip install -e '.[train]'
    python scripts/build_voice_encoder.py
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from model_export import download_wheel, wheel_license  # noqa: E402

WHEEL = "Resemblyzer==0.1.4"


TOP_STEP = 2  # the top LSTM layer reads the layer below in steps of 20 ms (pairs of its outputs averaged)


def layer_by_layer(state: dict) -> dict:  # type: ignore[type-arg]
    """Resemblyzer's weights renamed for ``Encoder``'s one-layer LSTMs (lstm.weight_ih_l2 -> layers.2.weight_ih_l0)."""
    layers = {}
    for key, value in state.items():
        if key.startswith("lstm."):
            name, i = key[len("lstm."):].rsplit("_l", 1)
            layers[f"layers.{i}.{name}_l0"] = value
        elif key.startswith("linear."):
            layers[key] = value
    return layers


def encoder(state: dict, top_step: int = TOP_STEP, layer_means: bool = True):  # type: ignore[no-untyped-def,type-arg]
    import torch
    from torch import nn

    class Encoder(nn.Module):
        """Resemblyzer's network, its three LSTM layers run one by one so the top layer can take fewer steps.

        The top layer reads the second layer's outputs averaged in pairs: 80 steps for 1.6 s instead of 160,
        a fifth fewer multiply-adds for the whole encoder (216 -> 174 M a window). Measured against the
        original on the held-out speakers of scripts/train_voice_head.py (models/README.md): emotion as good
        or better; the speaker embedding as separating at cosine 0.7 as the original was at 0.6
        (voice.adapt.SAME_VOICE). Averaging the input instead (all layers at 20 ms) lost 5-8 points
        across corpora; the second layer at 20 ms as well lost 7 points on EMOVO with three statements."""

        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList([nn.LSTM(40 if i == 0 else 256, 256, 1, batch_first=True) for i in range(3)])
            self.linear = nn.Linear(256, 256)

        def run(self, mels: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
            """Each layer's outputs over time (the top layer in ``top_step`` steps), their time average and
            the layer's final state."""
            x, outputs, means, finals = mels, [], [], []
            for i, layer in enumerate(self.layers):
                if i == len(self.layers) - 1:
                    n = x.shape[1] // top_step
                    x = x[:, : n * top_step].reshape(x.shape[0], n, top_step, x.shape[2]).mean(2)
                x, (hidden, _) = layer(x)
                outputs.append(x)
                finals.append(hidden[0])
                means.append(x.mean(1))
            return outputs, means, finals

        def embed(self, final: torch.Tensor) -> torch.Tensor:
            """The speaker embedding from the top layer's final state, L2-normalised."""
            raw = torch.relu(self.linear(final))
            return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-9)

        def forward(self, mels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            outputs, means, finals = self.run(mels)
            embedding = self.embed(finals[-1])
            # what the emotion head reads: the last layer's outputs averaged over time (how the whole
            # window was spoken), every layer's final state (the speaker head saw only the last) and the
            # lower layers' outputs averaged over time (nearer the sound than the speaker-trained top:
            # +3 points on unseen actors, models/README.md; layer_means=False: the encoder before)
            states = torch.cat([outputs[-1].mean(1), *finals, *(means[:-1] if layer_means else [])], 1)
            return embedding, states

    model = Encoder()
    missing, _ = model.load_state_dict(layer_by_layer(state), strict=False)
    if missing:
        raise SystemExit(f"pretrained.pt lacks {missing}")
    return model.eval()


def weight_only_int8(src: Path, dst: Path, keep: frozenset[str] = frozenset()) -> None:
    """int8 weights with one scale per output row, dequantized by DequantizeLinear in the graph (float
    arithmetic: onnxruntime dequantizes them once, at load); initializers named in ``keep`` stay float."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    for init in list(graph.initializer):
        w = numpy_helper.to_array(init)
        if init.name in keep or w.dtype != np.float32 or w.ndim < 2 or w.size < 4096:
            continue  # biases and small tensors stay float
        axis = w.ndim - 2  # the output-row axis of LSTM W/R (dirs, 4*hidden, in) and of a MatMul's (in, out)^T
        if w.ndim == 2:
            axis = 1  # MatMul B is (in, out): one scale per output column
        red = tuple(i for i in range(w.ndim) if i != axis)
        scale = np.maximum(np.abs(w).max(axis=red), 1e-12) / 127.0
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        name = init.name
        graph.initializer.remove(init)
        graph.initializer.extend([numpy_helper.from_array(q, name + "_q"),
                                  numpy_helper.from_array(scale.astype(np.float32), name + "_scale"),
                                  numpy_helper.from_array(np.zeros_like(scale, dtype=np.int8), name + "_zero")])
        graph.node.insert(0, helper.make_node("DequantizeLinear", [name + "_q", name + "_scale", name + "_zero"],
                                              [name], axis=axis))
    onnx.save(model, str(dst))


def quantize(src: Path, dst: Path) -> None:
    """The float encoder -> int8: the upper two LSTM layers compute in int8, the rest keeps int8 weights.

    The second and third layers read LSTM outputs (in -1..1), which onnxruntime's dynamic quantization
    (DynamicQuantizeLSTM: int8 weights per output row, each step's input and state quantized to uint8)
    keeps intact: embedding cosine 0.999 to float, and the encoder 44 % faster (2.9 vs 5.1 ms a window
    on a 2-core EPYC with VNNI, 2026-12-03; models/README.md). Its weights take 7 bits (``reduce_range``),
    because x86 CPUs without VNNI multiply uint8 by int8 with VPMADDUBSW, whose int16 pair sums saturate
    past them (under an emulated Haswell the 8-bit encoder drifted to cosine 0.998, the 7-bit one read
    alike on both). The first layer reads raw mel power, whose range no 8 bits hold (quantized the same way
    it fell to cosine 0.83): it computes in float, its recurrent weights and the speaker projection stored
    in int8 (``weight_only_int8``), its input weights in float (in int8 they alone cost cosine 0.999 ->
    0.992; 160 KB)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(src)).graph
    first = next(n for n in graph.node if n.op_type == "LSTM")
    with tempfile.TemporaryDirectory() as tmp:
        upper = Path(tmp) / "upper.onnx"
        quantize_dynamic(str(src), str(upper), op_types_to_quantize=["LSTM"], nodes_to_exclude=[first.name],
                         per_channel=True, reduce_range=True, weight_type=QuantType.QInt8)
        weight_only_int8(upper, dst, keep=frozenset({first.input[1]}))


def check_input() -> np.ndarray:
    """Partials of real speech (espeak-ng, several voices) in the daemon's own mel frames."""
    sys.path.insert(0, str(ROOT / "daemon"))
    from emomusic.sources.samples import espeak_speech
    from emomusic.voice.encoder import mel_frames

    out = []
    for voice in ("en-us", "en-gb", "de", "fr"):
        y = espeak_speech("The quick brown fox jumps over the lazy dog, and then it rests.", ("-v", voice))
        if y is not None:
            mel = mel_frames(y)
            out.extend(mel[s : s + 160] for s in range(0, mel.shape[0] - 160, 80))
    if not out:
        raise SystemExit("espeak-ng is needed for the int8 check (apt install espeak-ng)")
    return np.stack(out).astype(np.float32)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "models")
    ap.add_argument("--top-step", type=int, default=TOP_STEP,
                    help="frames per step of the top layer (1: Resemblyzer's original network, for comparison)")
    ap.add_argument("--top-only", action="store_true",
                    help="the head's input without the lower two layers' time averages (1,024 values: the "
                    "encoder before 2026-12-04, to compare heads with train_voice_head.py --models DIR)")
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        with download_wheel(WHEEL, tmp) as z:
            checkpoint = torch.load(io.BytesIO(z.read("resemblyzer/pretrained.pt")), map_location="cpu")
            (args.out / "LICENSE.resemblyzer.txt").write_bytes(wheel_license(z))
        model = encoder(checkpoint["model_state"], args.top_step, not args.top_only)
        fp32, int8 = tmp / "encoder.onnx", args.out / "voice_encoder_int8.onnx"
        torch.onnx.export(model, (torch.rand(1, 160, 40),), str(fp32), input_names=["mel"],
                          output_names=["embedding", "states"], opset_version=17, dynamo=False,
                          dynamic_axes={"mel": {0: "batch", 1: "frames"}, "embedding": {0: "batch"},
                                        "states": {0: "batch"}})
        quantize(fp32, int8)
        mel = check_input()
        with torch.no_grad():
            ref = model(torch.from_numpy(mel))[0].numpy()
        out = ort.InferenceSession(str(int8), providers=["CPUExecutionProvider"]).run(None, {"mel": mel})[0]
        cos = float(np.min(np.sum(ref * out, axis=1)))
        print(f"wrote {int8} ({int8.stat().st_size // 1024} KB); int8 vs torch cosine >= {cos:.4f}")
        if cos < 0.995:
            raise SystemExit("int8 encoder drifted from the original; not kept")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
