"""g_s and the analysis without PyTorch: exported ONNX files, run by OpenVINO or onnxruntime on the CPU.

What PyTorch costs a one-image decode is start-up (about 2.5 s of a 3-5 s ``jcd decode``), not the
network. This runs the same network, exported at weights-export time (:mod:`.nn.onnx_export`), in a
runtime that loads in a tenth of a second. Two runtimes read the file (docs/speed.md measures both):

- OpenVINO, when installed (``pip install jcdcodec[openvino]``): computes in bf16 on CPUs that have it
  natively (AVX512-BF16, AMX), like the PyTorch engine's ``--precision auto``; 2.3x faster there.
- onnxruntime (installed with jcd): fp32 everywhere; its idle threads sleep instead of spinning, so a
  decode's CPU time is its work.

``JCD_ONNX_RUNTIME=onnxruntime|openvino`` picks one; by default OpenVINO when it imports, else onnxruntime.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import io
import os
import platform
import sys
import types
from pathlib import Path

import numpy as np

from . import usercache
from .errors import JcdError, WeightsError

#: Metadata key naming the weights file a synthesis file belongs to (written by nn.onnx_export).
WEIGHTS_KEY = "jcd_weights_sha256"
RUNTIMES = ("openvino", "onnxruntime")


def available_runtimes() -> list[str]:
    """The ONNX runtimes that are installed, in order of preference (found without importing them)."""
    return [r for r in RUNTIMES if importlib.util.find_spec(r) is not None]


def choose_runtime() -> str | None:
    """``$JCD_ONNX_RUNTIME`` if set (checked), else the preferred installed runtime, else None."""
    wanted = os.environ.get("JCD_ONNX_RUNTIME")
    found = available_runtimes()
    if wanted:
        if wanted not in RUNTIMES:
            raise JcdError(f"JCD_ONNX_RUNTIME={wanted!r}: use one of {', '.join(RUNTIMES)}")
        if wanted not in found:
            raise JcdError(f"JCD_ONNX_RUNTIME={wanted}: {wanted} is not installed")
        return wanted
    return found[0] if found else None


def _check_belongs(path: Path, found: str | None, weights_sha256: str) -> None:
    if found != weights_sha256:
        raise WeightsError(f"{path}: belongs to other weights ({(found or 'unnamed')[:12]}, expected "
                           f"{weights_sha256[:12]}); export it again with `jcd export-synthesis`")  # fmt: skip


class OnnxNetwork:
    """One network of a weights file, exported to ONNX, run on the CPU: one float32 array in, one out."""

    #: What the file holds, for messages and the compiled-network cache.
    kind = "network"

    def __init__(self, path: Path, weights_sha256: str, threads: int = 0, precision: str = "auto",
                 runtime: str | None = None, file_sha256: str | None = None) -> None:  # fmt: skip
        """``threads`` 0: the runtime's default (one per core); ``precision`` "fp32" forbids bf16;
        ``file_sha256``: the file's checksum when already verified (else it is computed if needed)."""
        self.runtime = runtime or choose_runtime()
        if self.runtime is None:
            raise JcdError("the onnx engine needs onnxruntime or openvino (pip install onnxruntime)")
        try:
            if self.runtime == "openvino":
                self._run, found = _openvino(path, threads, precision, weights_sha256, file_sha256, self.kind)
            else:
                self._run, found = _onnxruntime(path, threads)
        except (WeightsError, JcdError):
            raise
        except Exception as e:  # both runtimes raise their own exception types for unreadable models
            raise WeightsError(f"{path}: not a readable {self.kind} file ({str(e).splitlines()[0]})") from None
        _check_belongs(path, found, weights_sha256)

    def __call__(self, a: np.ndarray) -> np.ndarray:
        return self._run(np.ascontiguousarray(a, dtype=np.float32))

    def release(self) -> None:
        """Give back the working memory the runtime keeps between calls (OpenVINO keeps its buffers for the
        largest input it has seen: about 0.3 GB per Mpx of tile for the N=128 analysis); the next call
        allocates it again."""
        release = getattr(self._run, "release", None)
        if release is not None:
            release()


#: Pictures above this many (padded) pixels give a network's working memory back after it ran: OpenVINO keeps
#: it between calls, and what comes next needs it more (the encoder's entropy coding: at 24 Mpx the analysis
#: held about 0.4 GiB over the PyTorch encoder's peak; the decoder's output picture, and in a batch the next
#: stream's entropy decoding). Smaller pictures keep it for the next image of a batch.
RELEASE_ABOVE = 4_000_000


class OnnxSynthesis(OnnxNetwork):
    """``x = g_s(y)`` for y (1, N, h, w) float32 -> x (1, 3, 16h, 16w) float32."""

    kind = "synthesis"


def _onnxruntime(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    found = session.get_modelmeta().custom_metadata_map.get(WEIGHTS_KEY)
    name = session.get_inputs()[0].name
    return (lambda a: session.run(None, {name: a})[0]), found


def _openvino_runtime() -> types.ModuleType:
    """OpenVINO's compiled runtime (``openvino._pyopenvino``), without running the package's ``__init__``.

    That ``__init__`` also imports the model converter and a telemetry client (with urllib, http, email):
    0.13 s of a 0.2 s import, a seventh of a one-image decode. A stand-in package is put in place for
    the import of the extension only and removed afterwards, so a later ``import openvino`` in the same
    program runs the real ``__init__`` (which reuses the loaded extension). Any failure falls back to the
    ordinary import.
    """
    name = "openvino._pyopenvino"
    if "openvino" in sys.modules or name in sys.modules:
        importlib.import_module("openvino")
        return importlib.import_module(name)
    spec = importlib.util.find_spec("openvino")
    stand_in = types.ModuleType("openvino")
    stand_in.__spec__ = spec
    stand_in.__path__ = list(spec.submodule_search_locations or [])  # type: ignore[union-attr]
    sys.modules["openvino"] = stand_in
    try:
        return importlib.import_module(name)
    except Exception:
        sys.modules.pop(name, None)
        sys.modules.pop("openvino", None)
        importlib.import_module("openvino")
        return importlib.import_module(name)
    finally:
        if sys.modules.get("openvino") is stand_in:
            del sys.modules["openvino"]


def _openvino(path: Path, threads: int, precision: str, weights_sha256: str, file_sha256: str | None = None,
              kind: str = "synthesis"):  # fmt: skip
    ov = _openvino_runtime()
    core = ov.Core()
    config: dict[str, object] = {}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    if precision == "fp32":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    key = _compiled_key(ov, core, path, config, weights_sha256, file_sha256, kind)
    compiled, found, model = _import_compiled(core, key, config), weights_sha256, None
    if compiled is None:
        model = core.read_model(str(path))
        found = None
        if model.has_rt_info(["framework", WEIGHTS_KEY]):
            found = model.get_rt_info(["framework", WEIGHTS_KEY]).astype(str)
        compiled = core.compile_model(model, "CPU", config)
    # Cached after its first run (a network whose kernels fail there is never stored), and only one whose
    # file was checked against its weights.
    unsaved = compiled if compiled is not None and model is not None and key and found == weights_sha256 else None
    state = {"request": compiled.create_infer_request(), "unsaved": unsaved, "compiled": compiled}

    def infer(y: np.ndarray) -> np.ndarray:
        request = state["request"]
        request.infer({0: ov.Tensor(y)}, False, False)
        x = request.get_output_tensor(0).data.copy()
        if state["unsaved"] is not None:
            unsaved, state["unsaved"] = state["unsaved"], None
            buffer = io.BytesIO()
            unsaved.export_model(buffer)
            usercache.write(key, buffer.getvalue())
        return x

    def run(y: np.ndarray) -> np.ndarray:
        try:
            return infer(y)
        except RuntimeError:
            # OpenVINO picks bf16 from what the CPU reports; where oneDNN is held to less (e.g.
            # ONEDNN_MAX_CPU_ISA=AVX2) its bf16 kernels fail at the first call. Fall back to fp32 once.
            if config.get("INFERENCE_PRECISION_HINT") == "f32":
                raise
            config["INFERENCE_PRECISION_HINT"] = "f32"
            fp32_model = model if model is not None else core.read_model(str(path))
            state["compiled"] = core.compile_model(fp32_model, "CPU", config)
            state["request"] = state["compiled"].create_infer_request()
            state["unsaved"] = None  # held below the CPU's own precision: not worth a cache entry
            return infer(y)

    def release() -> None:
        state["compiled"].release_memory()

    run.release = release  # type: ignore[attr-defined]
    return run, found


def _compiled_key(ov: types.ModuleType, core: object, path: Path, config: dict, weights_sha256: str,
                  file_sha256: str | None = None, kind: str = "synthesis") -> str | None:  # fmt: skip
    """The user-cache key of a network compiled for this CPU: everything the compiled network depends on
    (for the analysis, whose parameters live in the weights file, the weights' sha256 covers them).

    A network compiled for one CPU's instructions must never run on another (a home folder shared over
    the network, oneDNN held to an older instruction set): the CPU's name, its flags as the kernel
    reports them and the oneDNN/OpenVINO variables that limit them are part of the key.
    """
    if usercache.cache_dir() is None:
        return None
    try:
        flags = ""
        with contextlib.suppress(OSError):
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
                flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
        return usercache.make_key(
            "openvino-g_s" if kind == "synthesis" else f"openvino-{kind}",
            file=file_sha256 or hashlib.sha256(path.read_bytes()).hexdigest(),
            weights=weights_sha256,
            version=ov.get_version(),
            config=config,
            cpu=[core.get_property("CPU", "FULL_DEVICE_NAME"), core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
                 platform.machine(), flags],
            env={k: v for k, v in os.environ.items() if k.startswith(("ONEDNN_", "DNNL_", "OV_"))},
        )  # fmt: skip
    except Exception:  # no key, no cache: the network is compiled as without one
        return None


def _import_compiled(core: object, key: str | None, config: dict) -> object | None:
    """The compiled network stored under ``key``, or None (then it is compiled from the file)."""
    blob = usercache.read(key) if key is not None else None
    if blob is None:
        return None
    try:
        return core.import_model(blob, "CPU", config)
    except Exception:  # another OpenVINO's blob that slipped past the key, or a damaged one: compile
        return None
