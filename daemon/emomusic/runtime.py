"""One small wrapper over the two inference runtimes: onnxruntime (default) and LiteRT/tflite.

The runtime is imported lazily (a Pi without tflite never pays for it), threads are pinned (the
daemon shares two to four cores with capture and audio), and the input layout is read from the
model, so callers always pass NCHW float32 and get a list of arrays back. It also says what the CPU
offers int8 models: with an int8 dot-product instruction (x86 VNNI or AMX, arm64 SDOT: a Pi 5),
onnxruntime's int8 convolutions run 3-4x faster than fp32; without one (AVX2 alone, a Pi 4's Cortex-A72)
about 1.1-2x, and the face CNN costs four times as much per view; the daemon picks its face classifier
by it (``face.classifier``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np

Backend = Literal["onnxruntime", "tflite"]


class ModelError(Exception):
    """A model file that is missing or cannot be loaded; the message names it and how to rebuild it."""


class Model:
    """A loaded model: ``run(x)`` with ``x`` NCHW float32, returns the outputs in model order."""

    def __init__(self, path: str | Path, backend: Backend = "onnxruntime", threads: int = 1,
                 rebuild_hint: str = "", weight_only: bool = False, prepack: bool = True,
                 shared_arena: bool = True) -> None:
        self.path = Path(path)
        self.backend = backend
        self.weight_only = weight_only  # a weight-only int8 ONNX model (DequantizeLinear on initializers)
        # onnxruntime's weight prepacking: a copy of the weights in its GEMM layout. It pays for the int8
        # face CNN (2.2 vs 3.4 ms a view) and the voice encoder's int8 LSTM layers (2.9 vs 6.2 ms a
        # window); the detectors run as fast without it, in less memory (#35).
        self.prepack = prepack
        # onnxruntime: intermediate tensors from the process's one shared arena (``shared_arena``) rather
        # than fresh memory each run; False for a model that runs seldom on large inputs (the music tagger).
        self.shared_arena = shared_arena
        self._transient: Any = None  # onnxruntime RunOptions that give a large run's memory back afterwards
        self._turns: threading.Lock | contextlib.nullcontext[None] = contextlib.nullcontext()
        hint = f"; rebuild it with {rebuild_hint}" if rebuild_hint else ""
        if not self.path.is_file():
            raise ModelError(f"model file {self.path} not found{hint}")
        try:
            if backend == "onnxruntime":
                self._load_onnx(threads)
            else:
                self._load_tflite(threads)
        except ModelError:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            raise ModelError(f"model file {self.path} cannot be loaded ({first}){hint}") from None

    def _load_onnx(self, threads: int) -> None:
        import onnxruntime as ort

        ort.disable_telemetry_events()  # the environment opt-out (emomusic/__init__.py) stops the rest
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # No arena of the session's own: it keeps each session's peak activations for good, rounded up to
        # powers of two (8 MB more RSS with four sessions). Without any arena, though, every activation over
        # glibc's mmap threshold (service.memory) is a fresh mapping, faulted in page by page and unmapped
        # after the run: 3,000 page faults a round of the stream's four models; a loop of them takes 16-21 %
        # less CPU without (measured 2026-12-05, #35). So the stream's models share one arena that grows by
        # what is asked for, and take turns (``_TURNS``) so that it holds one run's activations, not two at
        # once; without the memory pattern, whose one block a run would not fit in the pieces the first run
        # left. 2.9 MB more than no arena, 7 faults a round.
        opts.enable_cpu_mem_arena = False
        if self.shared_arena and _shared_arena():
            opts.add_session_config_entry("session.use_env_allocators", "1")
            opts.enable_mem_pattern = False
            self._turns = _TURNS
            self._transient = ort.RunOptions()
            self._transient.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
        if not self.prepack:
            opts.add_session_config_entry("session.disable_prepacking", "1")
        if self.weight_only:  # int8 weights, float arithmetic: dequantize them once, at load
            opts.add_session_config_entry("session.disable_quant_qdq", "1")
        # The int8 face CNNs keep their first block in float (scripts/model_export.float_stem); QDQ
        # propagation would move the quantization after its pooling in front of it, onto a slow uint8 pooling
        # over the full-size map (95 us of a 385 us view). The other models read the same without it.
        self._sess = ort.InferenceSession(str(self.path), opts, providers=["CPUExecutionProvider"],
                                          disabled_optimizers=["QDQPropagationTransformer"])
        inp = self._sess.get_inputs()[0]
        self.input_name = inp.name
        self.input_shape = [d if isinstance(d, int) else -1 for d in inp.shape]
        self._run = lambda x, options=None: self._sess.run(None, {self.input_name: x}, options)

    def _load_tflite(self, threads: int) -> None:
        interp: Any = _tflite_interpreter()(model_path=str(self.path), num_threads=threads)
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        shape = [int(d) for d in inp["shape"]]
        self.input_shape = shape
        self.input_name = inp["name"]
        outs = interp.get_output_details()
        in_scale, in_zero = inp.get("quantization", (0.0, 0))

        def run(x: np.ndarray, options: object = None) -> list[np.ndarray]:  # no RunOptions in LiteRT
            results = []
            for i in range(x.shape[0]):  # tflite models here have a fixed batch of 1
                xi = _to_layout(x[i : i + 1], shape, self.path.name)
                if inp["dtype"] != np.float32:
                    xi = np.clip(np.round(xi / in_scale + in_zero), -128, 255)
                interp.set_tensor(inp["index"], np.ascontiguousarray(xi, dtype=inp["dtype"]))
                interp.invoke()
                row = []
                for o in outs:
                    y = interp.get_tensor(o["index"])
                    scale, zero = o.get("quantization", (0.0, 0))
                    row.append((y.astype(np.float32) - zero) * scale if scale else y.astype(np.float32))
                results.append(row)
            return [np.concatenate([r[k] for r in results]) for k in range(len(outs))]

        self._run = run

    def run(self, x: np.ndarray, transient: bool = False) -> list[np.ndarray]:
        """The outputs for ``x``. ``transient``: a one-off run unlike the stream's (a photo's faces and
        their mirrors in one batch), whose activations go back from the shared arena afterwards instead
        of keeping it that large."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        with self._turns:
            return list(self._run(x, self._transient if transient else None))


_TURNS = threading.Lock()  # one run at a time of the models on the shared arena (the face's and the voice's)


@functools.cache
def _shared_arena() -> bool:
    """Register onnxruntime's one CPU arena for this process's sessions (once); False where it cannot.
    It grows by what a run asks for, not to the next power of two, and the sessions' runs reuse it."""
    import onnxruntime as ort

    try:
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        ort.create_and_register_allocator(info, ort.OrtArenaCfg({"arena_extend_strategy": 1}))  # same as asked
    except Exception:  # an older onnxruntime, or one registered already by the embedding application
        return False
    return True


def _tflite_interpreter() -> Any:
    """LiteRT's Interpreter (or tflite-runtime's), imported only when the tflite backend is chosen."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError:
            raise ModelError(
                "the tflite backend needs ai-edge-litert or tflite-runtime: pip install 'emomusic[tflite]'"
            ) from None
    return Interpreter


def _to_layout(xi: np.ndarray, shape: list[int], name: str) -> np.ndarray:
    """Converters move channels last (NCHW -> NHWC, NCT -> NTC); follow the model's layout."""
    if list(xi.shape[1:]) == shape[1:]:
        return xi
    if xi.ndim == 3 and list(xi.shape[1:]) == shape[1:][::-1]:
        return xi.transpose(0, 2, 1)
    if xi.ndim == 4 and [xi.shape[2], xi.shape[3], xi.shape[1]] == shape[1:]:
        return xi.transpose(0, 2, 3, 1)
    raise ValueError(f"input of shape {list(xi.shape[1:])} does not fit {name}'s {shape[1:]}")


def load_classifier(models_dir: Path, stem: str, labels: tuple[str, ...], backend: Backend = "onnxruntime",
                    precision: str = "int8", threads: int = 1, rebuild_hint: str = "") -> Model:
    """``<stem>[_int8].onnx|tflite`` from ``models_dir``, after checking that its metadata
    (``<stem>.json``) lists the labels the caller expects, in the same order."""
    import json

    suffix = "_int8" if precision == "int8" else ""
    ext = "onnx" if backend == "onnxruntime" else "tflite"
    model = Model(models_dir / f"{stem}{suffix}.{ext}", backend, threads, rebuild_hint)
    meta = models_dir / f"{stem}.json"
    found = json.loads(meta.read_text())["labels"] if meta.is_file() else list(labels)
    if tuple(found) != labels:
        raise ModelError(f"{meta}: labels {found} differ from the expected {list(labels)}")
    return model


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def peakedness(p: np.ndarray) -> float:
    """1 for a one-hot distribution, 0 for a uniform one."""
    q = np.clip(p, 1e-9, 1)
    return float(1 + (q * np.log(q)).sum() / math.log(len(q)))


INT8_DOT_FLAGS = {"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"}  # /proc/cpuinfo: x86 VNNI/AMX; arm64 SDOT/UDOT
CPUID_NAMES = {"AVX512VNNI", "AVXVNNI", "AMX_INT8", "ASIMDDP"}  # the same, as numpy names what the CPU reports


def int8_dot_product(cpuinfo: str) -> bool:
    """Whether /proc/cpuinfo's flags (x86) or Features (arm64) name an int8 dot-product instruction."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags |= set(line.split(":", 1)[1].split())
    return bool(flags & INT8_DOT_FLAGS)


def cpuid_features() -> dict[str, bool]:
    """What numpy found when it asked the CPU itself (CPUID on x86), as onnxruntime's kernels do; empty
    where numpy does not say."""
    try:  # numpy 2; numpy 1.26 keeps it under numpy.core
        from numpy._core._multiarray_umath import __cpu_features__ as seen
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as seen  # type: ignore[no-redef]
        except ImportError:
            return {}
    return {str(k): bool(v) for k, v in dict(seen).items()}


def offers_int8_dot_product(cpuid: dict[str, bool] | None = None, cpuinfo: str | None = None) -> bool:
    """Whether the int8 kernels here get a dot-product instruction. The CPU's own answer where numpy knows the
    names (what the kernels see, also under ``bench.py --hide-int8-dot-product``); /proc/cpuinfo otherwise.
    numpy names no AVX-VNNI without AVX-512: such a CPU reads as one without, and gets the cheaper model."""
    seen = cpuid_features() if cpuid is None else cpuid
    if CPUID_NAMES & seen.keys():
        return any(seen.get(name, False) for name in CPUID_NAMES)
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    return int8_dot_product(cpuinfo)
