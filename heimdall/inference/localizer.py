"""``Localizer``: a ``heimdall.iqjob/1`` in, a ``heimdall.result/1`` out. Pure: no Redis, no Celery.

The path reads top to bottom: validate → choose the method (``inference.method``) → by power
(decode and resample each capture → features → ONNX) or by time (``heimdall.tdoa``: align →
pairwise delays → maximum likelihood, optionally with the network's Gaussian as a prior) →
position and covariance → ellipse and GeoJSON. Every failure the job can cause becomes a
``failed`` result whose code comes from the exception's type (see ``heimdall.schemas.errors``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.dsp.detect import signal_present
from heimdall.dsp.features import FeatureExtractor, num_frames
from heimdall.dsp.iq import decode_iq
from heimdall.dsp.resample import rational_ratio, resample_to, resampled_length
from heimdall.dsp.threads import limit_native_threads
from heimdall.geo.ellipse import EllipseAxes, ellipse_from_covariance
from heimdall.geo.enu import LocalFrame, frame_at_centroid
from heimdall.geo.geojson import estimate_feature_collection
from heimdall.inference.failures import failed_result
from heimdall.inference.method import choose, timed_indices
from heimdall.inference.model import load_model_files
from heimdall.inference.payloads import PayloadSource, TimedSource, interruptions
from heimdall.inference.session import create_session
from heimdall.schemas.errors import (
    HeimdallError,
    InvalidJob,
    InvalidPayload,
    NoSignal,
    PayloadMissing,
    TooFewReceivers,
    UnknownModel,
)
from heimdall.schemas.job import MAX_JOB_SAMPLES, IQJob, job_id_of
from heimdall.schemas.result import (
    Alternative,
    Ellipse,
    PairEvidence,
    Position,
    Result,
    TdoaEvidence,
    Timings,
    worker_id,
)
from heimdall.tdoa.align import TimedCapture
from heimdall.tdoa.fuse import TdoaOutcome, tdoa_fix
from heimdall.tdoa.solve import GaussianPrior

log = logging.getLogger(__name__)

MIN_RECEIVERS = 3
# a job with less IQ than this (as complex64) has all its captures decoded at once
STACKED_IQ_BYTES = 16 * 2**20
HYBRID_PRIOR_INFLATION = 25.0  # RSS covariance × this (σ × 5) when it is the TDoA prior


@dataclass
class PreparedJob:
    """Model inputs of one job (batch axis of 1) and the frame they are expressed in."""

    job: IQJob
    frame: LocalFrame
    spectra: np.ndarray  # [1, R, 2·n_mels, T], normalized
    rx_enu: np.ndarray  # [1, R, 3], divided by position_scale_m
    rx_mask: np.ndarray  # [1, R]


class Localizer:
    """One verified model and its ONNX session; reuse it for every job of a process."""

    def __init__(
        self,
        model_dir: str | Path,
        worker_name: str | None = None,
        native_threads: int | None = 1,
        max_job_samples: int = MAX_JOB_SAMPLES,
    ) -> None:
        """Load and verify ``model_dir``; ``native_threads`` caps numpy BLAS pools (None: as is);
        jobs of more than ``max_job_samples`` samples in all are refused before decoding."""
        self.max_job_samples = max_job_samples
        if native_threads is not None:
            limit_native_threads(native_threads)
        files = load_model_files(model_dir)
        self.manifest = files.manifest
        self.session = create_session(files.onnx_path, files.manifest)
        pre = files.manifest.preprocessing
        self.extractor = FeatureExtractor(pre.sample_rate_hz, pre.n_fft, pre.hop, pre.n_mels)
        self.worker_name = worker_name or worker_id()

    @property
    def version(self) -> str:
        return self.manifest.version

    def accepts(self, model: str) -> bool:
        """Whether a job asking for ``model`` may run here ("default" or this version)."""
        return model in ("default", self.version)

    def localize(
        self,
        job: IQJob | Mapping[str, Any],
        payloads: PayloadSource | None = None,
        timings: Timings | None = None,
    ) -> Result:
        """Localize one job; never raises for anything the job itself got wrong.

        ``payloads`` gives the IQ bytes of captures sent by ``iq_ref``, by receiver index
        (:mod:`heimdall.inference.payloads`). ``timings`` carries the stages the caller
        measured (``queue``, and ``fetch`` of payloads it read before); the Localizer adds its
        own. :func:`~heimdall.inference.payloads.interruptions` propagate.
        """
        return self.localize_many([(job, payloads, timings or Timings())])[0]

    def localize_many(
        self, items: list[tuple[IQJob | Mapping[str, Any], PayloadSource | None, Timings]]
    ) -> list[Result]:
        """:meth:`localize` for several jobs, with one ONNX call (batch axis B > 1) for all
        RSS jobs of the same shape (receivers × frames). Each job gets its own result and
        fails alone; its ``inference`` time is its share of the call it was part of."""
        sources = [TimedSource(payloads) for _, payloads, _ in items]
        timings = [t.model_copy() for _, _, t in items]
        results: list[Result | None] = [None] * len(items)
        groups: dict[tuple[int, ...], list[tuple[int, PreparedJob, float]]] = {}
        for k, (job, _, _) in enumerate(items):
            started_s = time.perf_counter()
            try:
                parsed, method = self._checked(job)
                if method != "rss":
                    fuse = {"tdoa": "never", "hybrid": "always"}.get(method, "if_ambiguous")
                    results[k] = self._by_time(parsed, sources[k], timings[k], fuse)
                    _add_total(results[k], started_s)
                    continue
                prepared = self.prepare(parsed, sources[k])
                timings[k].features = _ms_since(started_s)
                groups.setdefault(prepared.spectra.shape, []).append((k, prepared, started_s))
            except interruptions():
                raise
            except Exception as exc:
                results[k] = self._failed(job, exc, timings[k], started_s)
        for group in groups.values():
            self._infer_group(group, timings, results)
        return [_with_fetch(r, s.fetch_s) for r, s in zip(results, sources, strict=True)]

    def _infer_group(
        self,
        group: list[tuple[int, PreparedJob, float]],
        timings: list[Timings],
        results: list[Result | None],
    ) -> None:
        """One ONNX call for a group of prepared jobs of one shape; each job its result."""
        infer_s = time.perf_counter()
        try:
            mean_en, cov_chol = self.infer(*(prepared for _, prepared, _ in group))
        except interruptions():
            raise
        except Exception as exc:
            for k, prepared, started_s in group:
                results[k] = self._failed(prepared.job, exc, timings[k], started_s)
            return
        share_ms = _ms_since(infer_s) / len(group)
        for row, (k, prepared, _started_s) in enumerate(group):
            timings[k].inference = share_ms
            finish_s = time.perf_counter()
            try:
                result = self.to_result(prepared, mean_en[row], cov_chol[row], timings[k])
            except Exception as exc:
                result = self._failed(prepared.job, exc, timings[k], finish_s)
            result.timings_ms.total = timings[k].features + share_ms + _ms_since(finish_s)
            results[k] = result

    def _checked(self, job: IQJob | Mapping[str, Any]) -> tuple[IQJob, str]:
        """The parsed job and its method, once it is known this model may take it."""
        parsed = job if isinstance(job, IQJob) else IQJob.model_validate(job)
        if not self.accepts(parsed.model):
            raise UnknownModel(
                f"model {parsed.model!r} is not served here (this is {self.version})"
            )
        check_job_size(parsed, self.max_job_samples)
        return parsed, choose(parsed, self.manifest, _where)

    def _failed(
        self, job: IQJob | Mapping[str, Any], exc: Exception, timings: Timings, started_s: float
    ) -> Result:
        result = failed_result(
            job_id_of(job), exc, timings, model_version=self.version, worker=self.worker_name
        )
        result.timings_ms.total = (result.timings_ms.total or 0.0) + _ms_since(started_s)
        return result

    def _by_power(
        self, job: IQJob, payloads: PayloadSource, timings: Timings, started_s: float
    ) -> Result:
        """The RSS network: features → ONNX → position and covariance."""
        prepared = self.prepare(job, payloads)
        timings.features = _ms_since(started_s)
        infer_s = time.perf_counter()
        mean_en, cov_chol = self.infer(prepared)
        timings.inference = _ms_since(infer_s)
        return self.to_result(prepared, mean_en[0], cov_chol[0], timings)

    def _by_time(
        self, job: IQJob, payloads: PayloadSource, timings: Timings, fuse: str
    ) -> Result:
        """Time differences; ``fuse`` "always" (hybrid asked for) or "if_ambiguous" (auto)
        multiplies in the RSS network's Gaussian as a prior."""
        tdoa_s = time.perf_counter()
        captures = [self._timed_capture(job, i, payloads) for i in timed_indices(job)]
        outcome = tdoa_fix(captures)
        timings.tdoa = _ms_since(tdoa_s)
        if fuse == "never" or (fuse == "if_ambiguous" and not outcome.ambiguous):
            return self._time_result(job, outcome, "tdoa", timings)
        try:
            power = self._by_power(job, payloads, timings, time.perf_counter())
        except HeimdallError as exc:  # e.g. too weak at a receiver for the network: time alone
            log.info("job %s: no RSS prior (%s); time differences alone", job.job_id, exc)
            return self._time_result(job, outcome, "tdoa", timings)
        # Inflated: the network's ellipse is calibrated on its own simulator only, and a prior
        # too sure of itself drags a good time fix; weak, it still picks the right crossing.
        prior = GaussianPrior(
            power.position.lat,
            power.position.lon,
            np.array(power.covariance_en_m2) * HYBRID_PRIOR_INFLATION,
        )
        fused_s = time.perf_counter()
        outcome = outcome.with_prior(prior)
        timings.tdoa += _ms_since(fused_s)
        return self._time_result(job, outcome, "hybrid", timings)

    def _timed_capture(self, job: IQJob, index: int, payloads: PayloadSource) -> TimedCapture:
        capture = job.receivers[index]
        return TimedCapture(
            index=index,
            receiver_id=capture.receiver_id,
            lat=capture.lat,
            lon=capture.lon,
            alt_m=capture.alt_m,
            samples=lambda: self._decoded(job, index, payloads),
            num_samples=capture.num_samples,
            time_ns=capture.time_ns,
            sample_rate_hz=capture.sample_rate_hz,
            center_frequency_hz=capture.center_frequency_hz,
            clock_sigma_ns=float(capture.clock.uncertainty_ns),
        )

    def _time_result(
        self, job: IQJob, outcome: TdoaOutcome, method: str, timings: Timings
    ) -> Result:
        fix = outcome.fix
        dropped = {outcome.receiver(r) for r in fix.dropped}
        modes = [
            (mode, ellipse_from_covariance(np.asarray(mode["covariance_en_m2"]), job.confidence))
            for mode in fix.alternatives
        ]
        return self._estimate(
            job,
            fix.lat,
            fix.lon,
            np.asarray(fix.covariance_en_m2),
            method,
            used=[c.receiver_id for c in outcome.aligned.captures if c.receiver_id not in dropped],
            properties={"job_id": job.job_id, "method": method},
            timings=timings,
            modes=[(m["lat"], m["lon"], axes, m["relative_likelihood"]) for m, axes in modes],
            alternatives=[Alternative(**m, ellipse=Ellipse(**asdict(axes))) for m, axes in modes],
            tdoa=TdoaEvidence(
                pairs=[
                    PairEvidence(
                        a=outcome.receiver(p.a),
                        b=outcome.receiver(p.b),
                        delay_s=p.delay_s,
                        sigma_s=p.sigma_s,
                        peak_quality=p.peak_quality,
                    )
                    for p in outcome.pairs
                ],
                residual_rms_s=fix.residual_rms_s,
                window_start_ns=outcome.aligned.start_ns,
                window_s=outcome.aligned.duration_s,
                dropped_receivers=sorted(dropped),
                ambiguous=outcome.undecided,
            ),
        )

    def _estimate(
        self,
        job: IQJob,
        lat: float,
        lon: float,
        cov: np.ndarray,
        method: str,
        used: list[str],
        properties: dict,
        timings: Timings,
        modes: list[tuple[float, float, EllipseAxes, float]] | None = None,
        **evidence,
    ) -> Result:
        """An ``ok`` result: position, covariance (east/north m²), ellipse and GeoJSON (with the
        other likelihood ``modes`` as ``(lat, lon, axes, relative_likelihood)``)."""
        axes = ellipse_from_covariance(cov, job.confidence)
        stations = [(r.receiver_id, r.lat, r.lon, r.receiver_id in used) for r in job.receivers]
        return Result(
            job_id=job.job_id,
            status="ok",
            model_version=self.version,
            method=method,
            position=Position(lat=lat, lon=lon),
            covariance_en_m2=cov.tolist(),
            ellipse=Ellipse(**asdict(axes)),
            geojson=estimate_feature_collection(lat, lon, axes, properties, stations, modes),
            receivers_used=used,
            timings_ms=timings,
            worker=self.worker_name,
            **evidence,
        )

    def prepare(self, job: IQJob, payloads: PayloadSource) -> PreparedJob:
        """Validate against the model, decode every capture and compute the model inputs.

        Captures are decoded, resampled and reduced to features one at a time (the IQ of one
        capture is held at once, never the whole job's), and cropped to the shortest capture.
        """
        if len(job.receivers) < MIN_RECEIVERS:
            raise TooFewReceivers(
                f"{len(job.receivers)} receivers present; the model needs at least {MIN_RECEIVERS}"
            )
        pre = self.manifest.preprocessing
        ratios = [self._ratio(job, i) for i in range(len(job.receivers))]
        common = min(
            resampled_length(r.num_samples, up, down)
            for r, (up, down) in zip(job.receivers, ratios, strict=True)
        )
        if common < pre.n_fft:
            raise InvalidPayload(
                f"after resampling only {common} samples remain; need n_fft={pre.n_fft}"
            )
        frames = num_frames(common, pre.n_fft, pre.hop)
        spectra = np.empty((1, len(job.receivers), 2 * pre.n_mels, frames), np.float32)
        if len(job.receivers) * common * 8 <= STACKED_IQ_BYTES:
            # a small job's captures go through the features together: one FFT call, not R
            iq = np.empty((len(job.receivers), common), np.complex64)
            for i in range(len(job.receivers)):
                iq[i] = self._samples(job, i, payloads)[:common]
            spectra[0], mean_power = self.extractor.capture_features(iq, pre.mean_db, pre.std_db)
        else:
            mean_power = np.empty((len(job.receivers), pre.n_fft))
            for i in range(len(job.receivers)):
                iq = self._samples(job, i, payloads)[:common]
                spectra[0, i], mean_power[i] = self.extractor.capture_features(
                    iq, pre.mean_db, pre.std_db
                )
        hearing = int(np.count_nonzero(signal_present(mean_power, frames)))
        if hearing < MIN_RECEIVERS:
            raise NoSignal(
                f"a signal stands above the noise at {hearing} of {len(job.receivers)} "
                f"receivers; localizing needs {MIN_RECEIVERS}"
            )
        rx = job.receivers
        lats, lons, alts = ([r.lat for r in rx], [r.lon for r in rx], [r.alt_m for r in rx])
        frame = frame_at_centroid(lats, lons, alts)
        enu = frame.to_enu(lats, lons, alts)
        return PreparedJob(
            job=job,
            frame=frame,
            spectra=spectra,
            rx_enu=(enu / self.manifest.position_scale_m).astype(np.float32)[None],
            rx_mask=np.ones((1, len(rx)), np.float32),
        )

    def infer(self, *prepared: PreparedJob) -> tuple[np.ndarray, np.ndarray]:
        """Run the ONNX session on jobs of one shape: ``mean_en`` [B, 2] and ``cov_chol``
        [B, 3], model units, one row per job in order."""

        def stacked(name: str) -> np.ndarray:
            parts = [getattr(p, name) for p in prepared]
            return parts[0] if len(parts) == 1 else np.concatenate(parts)

        inputs = {name: stacked(name) for name in ("spectra", "rx_enu", "rx_mask")}
        mean_en, cov_chol = self.session.run(["mean_en", "cov_chol"], inputs)
        return mean_en, cov_chol

    def to_result(
        self, prepared: PreparedJob, mean_en: np.ndarray, cov_chol: np.ndarray, timings: Timings
    ) -> Result:
        """Model outputs → position, covariance (m²), ellipse and GeoJSON."""
        scale = self.manifest.position_scale_m
        east_m, north_m = (float(v) * scale for v in mean_en)
        l11, l21, l22 = (float(v) * scale for v in cov_chol)
        chol = np.array([[l11, 0.0], [l21, l22]])
        cov = chol @ chol.T
        if not (np.isfinite(cov).all() and l11 > 0 and l22 > 0):
            raise HeimdallError(f"model produced an invalid covariance factor {cov_chol.tolist()}")
        lat, lon = prepared.frame.to_latlon(east_m, north_m)
        job = prepared.job
        return self._estimate(
            job,
            float(lat),
            float(lon),
            cov,
            "rss",
            used=[r.receiver_id for r in job.receivers],
            properties={"job_id": job.job_id, "model_version": self.version},
            timings=timings,
        )

    def _ratio(self, job: IQJob, index: int) -> tuple[int, int]:
        capture = job.receivers[index]
        try:
            return rational_ratio(
                capture.sample_rate_hz, self.manifest.preprocessing.sample_rate_hz
            )
        except HeimdallError as exc:
            raise type(exc)(f"{_where(job, index)}: {exc}") from exc

    def _samples(self, job: IQJob, index: int, payloads: PayloadSource) -> np.ndarray:
        """A capture's IQ at the model's rate."""
        capture = job.receivers[index]
        try:
            return resample_to(
                self._decoded(job, index, payloads),
                capture.sample_rate_hz,
                self.manifest.preprocessing.sample_rate_hz,
            )
        except HeimdallError as exc:
            raise type(exc)(f"{_where(job, index)}: {exc}") from exc

    def _decoded(self, job: IQJob, index: int, payloads: PayloadSource) -> np.ndarray:
        """A capture's IQ as complex64 at its own rate."""
        capture = job.receivers[index]
        if capture.iq_b64 is not None:
            try:
                payload = capture.inline_bytes()
            except ValueError as exc:
                raise InvalidPayload(f"{_where(job, index)}: {exc}") from exc
        else:
            payload = payloads.get(index)
            if payload is None:
                raise PayloadMissing(
                    f"{_where(job, index)}: no IQ found for iq_ref {capture.iq_ref!r}"
                )
        try:
            return decode_iq(payload, capture.datatype, capture.num_samples)
        except HeimdallError as exc:
            raise type(exc)(f"{_where(job, index)}: {exc}") from exc


def check_job_size(job: IQJob, max_job_samples: int) -> None:
    """Refuse (``invalid_job``) a job whose declared samples exceed the cap, before any IQ
    is fetched or decoded: memory per job is bounded by the cap (DESIGN §3, §8.14)."""
    if job.total_samples > max_job_samples:
        raise InvalidJob(
            f"receivers hold {job.total_samples} samples in all; the limit per job is "
            f"{max_job_samples} (HEIMDALL_MAX_JOB_SAMPLES)"
        )


def _where(job: IQJob, index: int) -> str:
    return f"receivers[{index}] ({job.receivers[index].receiver_id})"


def _ms_since(start_s: float) -> float:
    return (time.perf_counter() - start_s) * 1000.0


def _add_total(result: Result, started_s: float) -> None:
    result.timings_ms.total = (result.timings_ms.total or 0.0) + _ms_since(started_s)


def _with_fetch(result: Result, fetch_s: float) -> Result:
    """Payloads are read as the Localizer asks for them: that time is the ``fetch`` stage, not
    ``features`` (the caller's own reads are in ``fetch`` already)."""
    fetch_ms = fetch_s * 1000.0
    result.timings_ms.fetch = (result.timings_ms.fetch or 0.0) + fetch_ms
    if result.timings_ms.features is not None:
        result.timings_ms.features = max(0.0, result.timings_ms.features - fetch_ms)
    return result
