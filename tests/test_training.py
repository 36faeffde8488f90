"""Training pieces against independent references; a tiny end-to-end train → ONNX → Localizer."""

import json

import numpy as np
import pytest
from scipy.stats import multivariate_normal

torch = pytest.importorskip("torch")

from heimdall.dsp.features import FeatureExtractor  # noqa: E402
from heimdall.inference import Localizer  # noqa: E402
from heimdall.schemas.manifest import file_sha256  # noqa: E402
from heimdall.sim import ScenarioGenerator, SimConfig  # noqa: E402
from heimdall.training.dataset import normalized_stats, pooled_stats  # noqa: E402
from heimdall.training.network import gaussian_nll, pool  # noqa: E402


def test_numpy_pooling_matches_network_pooling():
    fx = FeatureExtractor(50_000.0, 512, 128, 32)
    sc = ScenarioGenerator(seed=1).next()
    db = fx.dbfs(sc.iq).astype(np.float64)
    mean_db, std_db = -80.0, 12.0
    ours = normalized_stats(pooled_stats(db), mean_db, std_db)
    theirs = pool(torch.from_numpy(((db - mean_db) / std_db).astype(np.float32))).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


def test_gaussian_nll_matches_scipy():
    rng = np.random.default_rng(0)
    mean = rng.standard_normal((5, 2))
    chol = np.column_stack([rng.uniform(0.5, 2, 5), rng.standard_normal(5), rng.uniform(0.5, 2, 5)])
    target = rng.standard_normal((5, 2))
    expected = []
    for m, (l11, l21, l22), y in zip(mean, chol, target, strict=True):
        L = np.array([[l11, 0], [l21, l22]])  # noqa: N806
        expected.append(-multivariate_normal(m, L @ L.T).logpdf(y) - np.log(2 * np.pi))
    got = gaussian_nll(torch.tensor(mean), torch.tensor(chol), torch.tensor(target))
    assert float(got) == pytest.approx(np.mean(expected), rel=1e-9)


@pytest.mark.slow
def test_tiny_training_run_exports_a_servable_model(tmp_path):
    from heimdall.training.train import TrainConfig, train

    config = TrainConfig(version="vtiny", train_jobs=400, epochs=2, dim=32, layers=1)
    out = train(config, tmp_path)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["onnx_sha256"] == file_sha256(out / "model.onnx")
    assert manifest["training"]["config"]["seed"] == config.seed
    assert manifest["training"]["simulator"] == SimConfig().as_dict() | {
        "eirp_dbm": list(SimConfig().eirp_dbm),
        "exponent": list(SimConfig().exponent),
        "noise_floor_dbm": list(SimConfig().noise_floor_dbm),
        "offset_hz": list(SimConfig().offset_hz),
        "random_receivers": list(SimConfig().random_receivers),
        "random_extent_m": list(SimConfig().random_extent_m),
        "band_hz": list(SimConfig().band_hz),
    }
    assert manifest["frequency_range_hz"] == [144e6, 146e6]  # the band it was trained on
    localizer = Localizer(out)
    job = ScenarioGenerator(seed=2).next().to_job()
    result = localizer.localize(job)
    assert result.status == "ok" and result.model_version == "vtiny"
