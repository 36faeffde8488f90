"""``heimdall train``: simulate, fit μ/σ, train with a full-covariance Gaussian NLL, calibrate,
export ONNX and write the manifest. Reproducible from ``TrainConfig.seed``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from heimdall.dsp.features import LOG_FLOOR, FeatureExtractor
from heimdall.geo.ellipse import chi2_2dof_scale
from heimdall.harness.console import Progress
from heimdall.schemas.manifest import ModelManifest, Preprocessing
from heimdall.sim.scenario import SimConfig
from heimdall.training.dataset import Arrays, build_arrays, normalized_stats

CHI2_2DOF_95 = chi2_2dof_scale(0.95) ** 2


@dataclass
class TrainConfig:
    version: str = "v1"
    seed: int = 20261127
    train_jobs: int = 50_000
    validation_fraction: float = 0.1
    epochs: int = 40
    batch_size: int = 256
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    dim: int = 128
    heads: int = 4
    layers: int = 3
    sample_rate_hz: float = 50_000.0
    n_fft: int = 512
    hop: int = 128
    n_mels: int = 32
    position_scale_m: float = 100_000.0
    pad_receivers: int = 12  # training tensors; the exported model takes any R ≤ max_receivers
    max_receivers: int = 16
    processes: int = 2
    sim: SimConfig = field(default_factory=SimConfig)


def _log(message: str) -> None:
    print(message, flush=True)


def train(config: TrainConfig, models_dir: Path) -> Path:
    """Train and export ``models_dir/<version>/``; returns that directory."""
    import torch

    from heimdall.training.export import export_model
    from heimdall.training.network import LocalizerNet, gaussian_nll

    started_s = time.monotonic()
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.processes)
    fx = FeatureExtractor(config.sample_rate_hz, config.n_fft, config.hop, config.n_mels)

    progress = Progress(config.train_jobs, "simulate")
    data = build_arrays(
        config.sim,
        config.seed,
        config.train_jobs,
        fx,
        config.pad_receivers,
        config.position_scale_m,
        config.processes,
        progress.update,
    )
    mean_db = data.sum_db / data.count
    std_db = math.sqrt(data.sumsq_db / data.count - mean_db**2)
    _log(f"features: μ = {mean_db:.3f} dBFS, σ = {std_db:.3f} dB over {data.count} values")
    train_idx, val_idx = _split(len(data), config.validation_fraction, config.seed)
    tensors = _tensors(data, mean_db, std_db)

    net = LocalizerNet(
        rows=2 * config.n_mels, dim=config.dim, heads=config.heads, layers=config.layers
    )
    opt = torch.optim.AdamW(
        net.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    rng = np.random.default_rng(config.seed)
    best = (math.inf, None, -1)
    history = []
    for epoch in range(config.epochs):
        net.train()
        order = rng.permutation(train_idx)
        losses = []
        for start in range(0, len(order), config.batch_size):
            idx = torch.from_numpy(order[start : start + config.batch_size])
            mean_en, chol = net.from_pooled(*(t[idx] for t in tensors[:3]))
            loss = gaussian_nll(mean_en, chol, tensors[3][idx])
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        val = _evaluate(net, tensors, val_idx, config.position_scale_m)
        history.append({"epoch": epoch + 1, "train_nll": float(np.mean(losses)), **val})
        _log(
            f"epoch {epoch + 1:3d}/{config.epochs}  train nll {np.mean(losses):7.3f}  "
            f"val nll {val['nll']:7.3f}  val median {val['median_km']:6.2f} km  "
            f"cov95 {val['coverage_95']:.3f}  {time.monotonic() - started_s:5.0f}s"
        )
        if val["nll"] < best[0]:
            best = (val["nll"], {k: v.clone() for k, v in net.state_dict().items()}, epoch + 1)
    net.load_state_dict(best[1])
    scale = _calibrate(net, tensors, val_idx)
    net.chol_scale.fill_(math.sqrt(scale))
    val = _evaluate(net, tensors, val_idx, config.position_scale_m)
    _log(
        f"best epoch {best[2]}; covariance × {scale:.3f} → val coverage95 {val['coverage_95']:.3f}"
    )

    out_dir = models_dir / config.version
    preprocessing = Preprocessing(
        sample_rate_hz=config.sample_rate_hz,
        n_fft=config.n_fft,
        hop=config.hop,
        n_mels=config.n_mels,
        log_floor=LOG_FLOOR,
        mean_db=mean_db,
        std_db=std_db,
    )
    onnx_path, sha256, inputs, outputs = export_model(net, out_dir, preprocessing, config)
    manifest = ModelManifest(
        name="heimdall-rss-attention",
        version=config.version,
        onnx_file=onnx_path.name,
        onnx_sha256=sha256,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        preprocessing=preprocessing,
        position_scale_m=config.position_scale_m,
        max_receivers=config.max_receivers,
        inputs=inputs,
        outputs=outputs,
        frequency_range_hz=config.sim.band_hz,
        covariance_scale=scale,
        training={
            "command": f"heimdall train --version {config.version} --seed {config.seed} "
            f"--jobs {config.train_jobs} --epochs {config.epochs}",
            "config": {k: v for k, v in asdict(config).items() if k != "sim"},
            "simulator": config.sim.as_dict(),
            "train_jobs": len(train_idx),
            "validation_jobs": len(val_idx),
            "best_epoch": best[2],
            "validation": val,
            "duration_s": round(time.monotonic() - started_s, 1),
            "parameters": sum(p.numel() for p in net.parameters()),
            "history": history,
        },
    )
    (out_dir / "manifest.json").write_text(json.dumps(manifest.model_dump(), indent=2) + "\n")
    _log(f"wrote {out_dir} in {time.monotonic() - started_s:.0f}s")
    return out_dir


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed + 1).permutation(n)
    n_val = round(n * fraction)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _tensors(data: Arrays, mean_db: float, std_db: float):
    import torch

    return (
        torch.from_numpy(normalized_stats(data.stats_db, mean_db, std_db)),
        torch.from_numpy(data.rx_enu),
        torch.from_numpy(data.rx_mask),
        torch.from_numpy(data.target_en),
    )


def _predict(net, tensors, idx: np.ndarray):
    import torch

    net.eval()
    with torch.no_grad():
        t = torch.from_numpy(idx)
        mean_en, chol = net.from_pooled(*(x[t] for x in tensors[:3]))
    return mean_en.numpy().astype(np.float64), chol.numpy().astype(np.float64)


def _mahalanobis_sq(mean_en, chol, target) -> np.ndarray:
    r = target - mean_en
    z1 = r[:, 0] / chol[:, 0]
    z2 = (r[:, 1] - chol[:, 1] * z1) / chol[:, 2]
    return z1**2 + z2**2


def _evaluate(net, tensors, idx: np.ndarray, position_scale_m: float) -> dict:
    mean_en, chol = _predict(net, tensors, idx)
    target = tensors[3].numpy()[idx].astype(np.float64)
    d2 = _mahalanobis_sq(mean_en, chol, target)
    err_km = np.linalg.norm(target - mean_en, axis=1) * position_scale_m / 1000.0
    nll = 0.5 * d2 + np.log(chol[:, 0]) + np.log(chol[:, 2])
    return {
        "nll": float(nll.mean()),
        "median_km": float(np.median(err_km)),
        "coverage_95": float((d2 <= CHI2_2DOF_95).mean()),
    }


def _calibrate(net, tensors, idx: np.ndarray) -> float:
    """Variance factor c so that c·Σ's 95 % ellipse holds 95 % of validation truths."""
    mean_en, chol = _predict(net, tensors, idx)
    d2 = _mahalanobis_sq(mean_en, chol, tensors[3].numpy()[idx].astype(np.float64))
    current = float(net.chol_scale) ** 2
    return current * float(np.quantile(d2, 0.95)) / CHI2_2DOF_95
