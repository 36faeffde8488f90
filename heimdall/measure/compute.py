"""What a job costs in process, no Redis (DESIGN §9): the standard job, the *compute limit*
(Localizers on P processes), the features against their bare FFTs, how cost grows with
receivers and samples, and the TDoA cases."""

from __future__ import annotations

import multiprocessing as mp
import statistics
import time
import uuid
from pathlib import Path

import numpy as np

from heimdall.harness.console import Progress
from heimdall.inference.localizer import Localizer
from heimdall.schemas.job import IQJob
from heimdall.sim import ScenarioGenerator, SimConfig

_pool_jobs: list[tuple[IQJob, dict[int, bytes]]] = []
COMPUTE_PASSES = 3
_pool_localizer: Localizer | None = None


def standard_jobs(
    n: int,
    seed: int,
    receivers: int | None = None,
    num_samples: int = 10_000,
    datatype: str = "cf32_le",
) -> list[IQJob]:
    """``n`` standard jobs (fresh job ids), or ``receivers`` random stations when given; IQ
    as ``datatype`` (ci16_le: what a 16-bit source such as a KiwiSDR sends)."""
    if receivers is None:
        cfg = SimConfig(network="reference", missing_probability=0.0, num_samples=num_samples)
    else:
        cfg = SimConfig(
            network="random",
            random_receivers=(receivers, receivers),
            missing_probability=0.0,
            num_samples=num_samples,
        )
    gen = ScenarioGenerator(cfg, seed=seed)
    progress = Progress(n, "simulate")
    jobs = []
    for i in range(n):
        jobs.append(gen.next().to_job(datatype, job_id=str(uuid.uuid4())))
        progress.update(i + 1)
    return jobs


def by_reference(job: IQJob) -> tuple[IQJob, dict[int, bytes]]:
    """The job as a worker sees it after fetching blobs: ``iq_ref`` captures plus payloads."""
    job, payloads = with_payloads(job)
    receivers = [
        r.model_copy(update={"iq_ref": f"bench:{job.job_id}:{i}"})
        for i, r in enumerate(job.receivers)
    ]
    return job.model_copy(update={"receivers": receivers}), payloads


def with_payloads(job: IQJob) -> tuple[IQJob, dict[int, bytes]]:
    """The job as an ingest service holds it: captures without inline IQ, and the raw IQ
    bytes the producer writes to blobs."""
    payloads = {i: r.inline_bytes() for i, r in enumerate(job.receivers)}
    receivers = [r.model_copy(update={"iq_b64": None}) for r in job.receivers]
    return job.model_copy(update={"receivers": receivers}), payloads


def _init_pool(model_dir: str) -> None:
    global _pool_localizer
    _pool_localizer = Localizer(model_dir)


def _run_one(index: int) -> dict:
    job, payloads = _pool_jobs[index]
    r = _pool_localizer.localize(job, payloads)
    return {"status": r.status, **r.timings_ms.model_dump()}


def feature_cost(job: IQJob, model_dir: Path, repeats: int = 200) -> dict:
    """Median ms per standard job of the features (all receivers, as the Localizer computes
    them) and of the bare FFTs of the same frames (complex64, ``scipy.fft``, one thread): in
    place in a buffer kept between calls (``bare_fft_ms``, the limit features can approach),
    and into a fresh array (``bare_fft_fresh_ms``, which also pays the new array's page faults).
    """
    import scipy.fft

    from heimdall.dsp.iq import decode_iq

    localizer = Localizer(model_dir)
    pre, extractor = localizer.manifest.preprocessing, localizer.extractor
    iq = np.stack(
        [decode_iq(r.inline_bytes(), r.datatype, r.num_samples) for r in job.receivers]
    ).astype(np.complex64)
    frames = np.lib.stride_tricks.sliding_window_view(iq, pre.n_fft, axis=-1)[..., :: pre.hop, :]
    frames = np.ascontiguousarray(frames.reshape(-1, pre.n_fft))
    buffer = np.empty_like(frames)

    def features() -> float:
        started = time.perf_counter()
        extractor.capture_features(iq, pre.mean_db, pre.std_db)
        return time.perf_counter() - started

    def bare_ffts() -> float:
        np.copyto(buffer, frames)  # fresh input each time, outside the timed call
        started = time.perf_counter()
        scipy.fft.fft(buffer, axis=-1, overwrite_x=True, workers=1)
        return time.perf_counter() - started

    def fresh_ffts() -> float:
        started = time.perf_counter()
        scipy.fft.fft(frames, axis=-1, workers=1)
        return time.perf_counter() - started

    out = {}
    runs = (("features", features), ("bare_fft", bare_ffts), ("bare_fft_fresh", fresh_ffts))
    for name, run in runs:
        run()  # first call allocates the workspace
        out[f"{name}_ms"] = statistics.median(run() * 1e3 for _ in range(repeats))
    out["ratio"] = out["features_ms"] / out["bare_fft_ms"]
    out["ratio_fresh"] = out["features_ms"] / out["bare_fft_fresh_ms"]
    out["frames"] = len(frames)
    return out


def compute_limit(
    jobs: list[IQJob], processes: int, model_dir: Path, passes: int = COMPUTE_PASSES
) -> dict:
    """Jobs/s of in-process Localizers on ``processes`` processes (fork, no Redis): the median
    of ``passes`` passes over ``jobs`` (one pass of 500 jobs is about a second, and passes of
    one run differ by ±5 % on this machine)."""
    global _pool_jobs
    _pool_jobs = [by_reference(j) for j in jobs]
    rates = []
    with mp.get_context("fork").Pool(processes, _init_pool, (str(model_dir),)) as pool:
        pool.map(_run_one, range(min(len(jobs), 4 * processes)))  # warm-up
        for _ in range(passes):
            started = time.perf_counter()
            rows = pool.map(_run_one, range(len(jobs)), chunksize=4)
            rates.append(len(jobs) / (time.perf_counter() - started))
    _pool_jobs = []
    return {
        "processes": processes,
        "jobs": len(jobs),
        "jobs_per_s": statistics.median(rates),
        "jobs_per_s_passes": rates,
        "failed": sum(r["status"] != "ok" for r in rows),
        "stage_ms_median": {
            k: statistics.median(r[k] for r in rows if r[k] is not None)
            for k in ("features", "inference", "total")
        },
    }


def scaling(model_dir: Path, repeats: int = 5) -> dict:
    """Median in-process cost (ms) per job vs receivers and vs samples per receiver."""
    localizer = Localizer(model_dir)

    def cost(jobs: list[IQJob]) -> dict:
        runs = [localizer.localize(*by_reference(j)) for j in jobs]
        out = {"status": runs[0].status if runs[0].status == "ok" else runs[0].error.code.value}
        for key in ("features", "inference", "total"):
            values = [getattr(r.timings_ms, key) for r in runs]
            out[key] = statistics.median(values) if None not in values else None
        return out

    receivers = {
        r: cost(standard_jobs(repeats, seed=300 + r, receivers=r))
        for r in (1, 2, 3, 4, 7, 10, 13, 16)
    }
    samples = {
        n: cost(standard_jobs(repeats, seed=400, num_samples=n))
        for n in (2_000, 10_000, 50_000, 200_000)
    }
    return {"receivers": receivers, "samples": samples}


TDOA_CASES = (  # (network, receivers, seconds of IQ each)
    ("hf", 3, 1), ("hf", 3, 30), ("hf", 7, 30), ("reference", 7, 1), ("reference", 7, 10),
)  # fmt: skip


def tdoa_jobs(repeats: int) -> dict[str, list[tuple[IQJob, tuple[float, float]]]]:
    """Per TDoA case, ``repeats`` simulated NFM jobs (method tdoa) with their true position."""
    from heimdall.sim.tdoa import TdoaScenarioGenerator, TdoaSimConfig

    cases = {}
    for network, receivers, seconds in TDOA_CASES:
        rate = 12_001.0 if network == "hf" else 50_000.0
        n = int(seconds * rate)
        config = TdoaSimConfig(
            network=network, num_samples=(n, n), random_receivers=(receivers, receivers)
        )
        gen = TdoaScenarioGenerator(config, seed=500)
        key = f"{network}, {receivers} rx × {seconds} s @ {rate / 1000:g} kHz"
        cases[key] = [
            (sc.job.model_copy(update={"method": "tdoa"}), (sc.true_lat, sc.true_lon))
            for sc in (gen.next(kind="nfm") for _ in range(repeats))
        ]
    return cases


def tdoa_cost(model_dir: Path, repeats: int = 3) -> dict:
    """In-process TDoA jobs (NFM, GNSS-timed): median time and error per case."""
    from heimdall.harness.result_table import error_m

    localizer = Localizer(model_dir)
    rows = {}
    for key, jobs in tdoa_jobs(repeats).items():
        times, errors, status = [], [], "ok"
        for job, (lat, lon) in jobs:
            result = localizer.localize(job)
            times.append(result.timings_ms.total)
            if result.status != "ok":
                status = result.error.code.value
                continue
            errors.append(error_m(result, lat, lon))
        rows[key] = {
            "status": status,
            "pairs": len(job.receivers) * (len(job.receivers) - 1) // 2,
            "total_ms": statistics.median(times),
            "error_m": statistics.median(errors) if errors else None,
        }
    return rows
