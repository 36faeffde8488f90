"""The ONNX Runtime session: one per process, single-threaded, checked against the manifest."""

from __future__ import annotations

import onnxruntime as ort

from heimdall.schemas.errors import ModelIntegrityError
from heimdall.schemas.manifest import ModelManifest, TensorSpec

_ORT_DTYPES = {"float32": "tensor(float)", "float64": "tensor(double)", "int64": "tensor(int64)"}


def session_options() -> ort.SessionOptions:
    """1 intra-op and 1 inter-op thread, no spinning: worker processes already fill the cores."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return options


def create_session(onnx_path, manifest: ModelManifest) -> ort.InferenceSession:
    """Load ``onnx_path`` on the CPU and refuse it if its I/O disagrees with ``manifest``."""
    try:
        session = ort.InferenceSession(
            str(onnx_path), sess_options=session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own untyped errors on corrupt files
        raise ModelIntegrityError(f"{onnx_path} cannot be loaded: {exc}") from exc
    _check_io("input", session.get_inputs(), manifest.inputs)
    _check_io("output", session.get_outputs(), manifest.outputs)
    return session


def _check_io(kind: str, actual: list, expected: list[TensorSpec]) -> None:
    got = {a.name: a for a in actual}
    if set(got) != {e.name for e in expected}:
        raise ModelIntegrityError(
            f"model {kind}s are {sorted(got)}, manifest says {sorted(e.name for e in expected)}"
        )
    for spec in expected:
        arg = got[spec.name]
        if arg.type != _ORT_DTYPES.get(spec.dtype):
            raise ModelIntegrityError(
                f"{kind} {spec.name} is {arg.type}, manifest says {spec.dtype}"
            )
        if len(arg.shape) != len(spec.shape):
            raise ModelIntegrityError(
                f"{kind} {spec.name} has rank {len(arg.shape)}, manifest says {len(spec.shape)}"
            )
        for axis, (dim, want) in enumerate(zip(arg.shape, spec.shape, strict=True)):
            if isinstance(want, int) and dim != want:
                raise ModelIntegrityError(
                    f"{kind} {spec.name} axis {axis} is {dim}, manifest says {want}"
                )
