"""ONNX export of a trained :class:`LocalizerNet` with dynamic B, R and T, checked for parity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heimdall.dsp.features import FeatureExtractor
from heimdall.schemas.manifest import Preprocessing, TensorSpec, file_sha256
from heimdall.sim.scenario import ScenarioGenerator
from heimdall.training.dataset import normalized_stats, pooled_stats

OPSET = 17
INPUTS = [
    TensorSpec(name="spectra", dtype="float32", shape=["B", "R", "rows", "T"]),
    TensorSpec(name="rx_enu", dtype="float32", shape=["B", "R", 3]),
    TensorSpec(name="rx_mask", dtype="float32", shape=["B", "R"]),
]
OUTPUTS = [
    TensorSpec(name="mean_en", dtype="float32", shape=["B", 2]),
    TensorSpec(name="cov_chol", dtype="float32", shape=["B", 3]),
]


def export_model(net, out_dir: Path, pre: Preprocessing, config):
    """Write ``out_dir/model.onnx``; returns (path, sha256, inputs, outputs)."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "model.onnx"
    rows = 2 * pre.n_mels
    example = (torch.zeros(1, 4, rows, 75), torch.zeros(1, 4, 3), torch.ones(1, 4))
    net.eval()
    # The TorchScript exporter (dynamo=False): no onnxscript dependency, and for this small
    # graph of matmuls, softmax and reductions it is exact; _check_parity proves it each time.
    torch.onnx.export(
        net,
        example,
        str(path),
        input_names=[s.name for s in INPUTS],
        output_names=[s.name for s in OUTPUTS],
        dynamic_axes={
            "spectra": {0: "B", 1: "R", 3: "T"},
            "rx_enu": {0: "B", 1: "R"},
            "rx_mask": {0: "B", 1: "R"},
            "mean_en": {0: "B"},
            "cov_chol": {0: "B"},
        },
        opset_version=OPSET,
        dynamo=False,
    )
    _check_parity(net, path, pre, config)
    inputs = [
        s.model_copy(update={"shape": ["B", "R", rows, "T"]}) if s.name == "spectra" else s
        for s in INPUTS
    ]
    return path, file_sha256(path), inputs, OUTPUTS


def _check_parity(net, path: Path, pre: Preprocessing, config) -> None:
    """ONNX on full spectra == torch on full spectra == torch on the dataset's pooled stats."""
    import onnxruntime as ort
    import torch

    fx = FeatureExtractor(pre.sample_rate_hz, pre.n_fft, pre.hop, pre.n_mels)
    scenarios = ScenarioGenerator(config.sim, seed=(config.seed, 999_999)).take(8)
    r_max = max(len(s.stations) for s in scenarios)
    rows, t = 2 * pre.n_mels, scenarios[0].iq.shape[1]
    spectra = np.zeros((8, r_max, rows, 1 + (t - pre.n_fft) // pre.hop), np.float32)
    stats = np.zeros((8, r_max, 3 * rows), np.float32)
    enu = np.zeros((8, r_max, 3), np.float32)
    mask = np.zeros((8, r_max), np.float32)
    for i, sc in enumerate(scenarios):
        r = len(sc.stations)
        db = fx.dbfs(sc.iq)
        spectra[i, :r] = (db - pre.mean_db) / pre.std_db
        stats[i, :r] = normalized_stats(
            pooled_stats(db.astype(np.float64)), pre.mean_db, pre.std_db
        )
        frame = sc.frame()
        st = sc.stations
        enu[i, :r] = frame.to_enu([s.lat for s in st], [s.lon for s in st], [s.alt_m for s in st])
        enu[i, :r] /= config.position_scale_m
        mask[i, :r] = 1.0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_mean, onnx_chol = session.run(None, {"spectra": spectra, "rx_enu": enu, "rx_mask": mask})
    with torch.no_grad():
        full = net(torch.from_numpy(spectra), torch.from_numpy(enu), torch.from_numpy(mask))
        pooled = net.from_pooled(
            torch.from_numpy(stats), torch.from_numpy(enu), torch.from_numpy(mask)
        )
    for got, ref in [
        (onnx_mean, full[0]),
        (onnx_chol, full[1]),
        (onnx_mean, pooled[0]),
        (onnx_chol, pooled[1]),
    ]:
        np.testing.assert_allclose(got, ref.numpy(), rtol=1e-3, atol=1e-4)
