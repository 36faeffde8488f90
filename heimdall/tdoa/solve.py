"""Maximum-likelihood position from pairwise delays (DESIGN §11, steps 3–4).

The pair delays share each receiver's clock error, so they are weighted by their full
covariance ``A·diag(σ_clock²)·Aᵀ + diag(σ_pair²)`` (generalized least squares), not as if they
were independent. A coarse grid over the receivers' hull plus a margin finds the likelihood's
local optima; Gauss–Newton refines each. The best is the estimate, others within a likelihood
ratio are ``alternatives``. The position is a robust (soft-L1) fit; its covariance is
``(JᵀWJ)⁻¹`` at the optimum, in a tangent plane at the estimate, with each receiver's σ as the
data show it (:func:`empirical_sigma_s`). A receiver whose clock disagrees with the rest is
dropped when that removes the misfit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import stats

from heimdall.geo.distance import SPEED_OF_LIGHT_M_S, propagation_m
from heimdall.geo.enu import LocalFrame, frame_at_centroid
from heimdall.schemas.errors import HeimdallError
from heimdall.tdoa.correlate import PairDelay
from heimdall.tdoa.valley import covering, valley_points

GRID_POINTS = 121
MIN_MARGIN_M = 20_000.0
ALTERNATIVE_RATIO = 0.05  # keep other optima at least this likely relative to the best
MAX_ALTERNATIVES = 3
OUTLIER_P = 1e-3  # χ² this improbable: look for one receiver to drop
OUTLIER_SIGMAS = 4.0  # a pair this far off the fit is a wrong peak, not noise
MIN_PAIRS_AFTER_REJECTION = 3
ROBUST_SCALE = 0.4  # soft-L1 knee, in receiver σ's: echo shifts are heavy-tailed (DESIGN §11)
ROBUST_ITERATIONS = 3
MIN_RECEIVERS_FOR_EMPIRICAL_SIGMA = 5  # 4 arrivals leave 1 dof: no receiver stands out
MIN_RECEIVERS_TO_PLACE = 4  # fewer: a long valley is geometry (3 crossings), not want of signal
MAX_SIGMA_EXTENTS = 3.0  # a position σ is at most this × the receivers' extent
UNPLACED_SHARE = 0.9  # a fix whose major σ reaches this share of that bound places nothing
VALLEY_LIMIT = float(stats.chi2.ppf(0.95, 2))  # the likelihood's 95 % region must be inside
DECISIVE_PRIOR = 2 * np.log(20.0)  # −2 log likelihood margin for a prior to overrule time


class TooFewPairs(HeimdallError):
    """Not enough usable pairs to place a transmitter."""


@dataclass
class Geometry:
    """Receivers (lat, lon, alt) and how path lengths are computed."""

    lats: np.ndarray
    lons: np.ndarray
    alts: np.ndarray
    frequency_hz: float

    def delays_s(self, lat, lon) -> np.ndarray:
        """Time of flight from points ``[...]`` to every receiver: ``[..., R]``."""
        lat = np.asarray(lat, dtype=np.float64)[..., None]
        lon = np.asarray(lon, dtype=np.float64)[..., None]
        tx_alt = float(self.alts.min())
        path = propagation_m(self.frequency_hz, lat, lon, tx_alt, self.lats, self.lons, self.alts)
        return path / SPEED_OF_LIGHT_M_S


@dataclass
class Fix:
    lat: float
    lon: float
    covariance_en_m2: np.ndarray
    chi2: float
    dof: int
    alternatives: list[dict] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)  # receivers left out by the clock test
    residual_rms_s: float = 0.0
    residual_s: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per pair, at the fix
    pairs: list[PairDelay] = field(default_factory=list)  # the pairs the fix used


@dataclass
class _Optimum:
    """Where one weighting of the pairs puts the likelihood's best optimum, and its others."""

    lat: float
    lon: float
    chi2: float
    dof: int
    modes: list[tuple[float, float, float]]  # other optima: lat, lon, relative likelihood
    residual_s: np.ndarray  # per pair, at the optimum
    pairs: list[PairDelay]
    outlier: PairDelay | None = None  # the worst pair, when it is beyond OUTLIER_SIGMAS


@dataclass(frozen=True)
class GaussianPrior:
    """A Gaussian belief about the position (e.g. the RSS network's): mean and east/north
    covariance (m²) in the tangent plane at the mean."""

    lat: float
    lon: float
    covariance_en_m2: np.ndarray

    def whitened(self, lat, lon) -> np.ndarray:
        """``L⁻¹·(x − μ)`` for points ``[...]``: ``[..., 2]``; its squared norm is −2 log p."""
        offset = LocalFrame(self.lat, self.lon).to_enu(lat, lon)[..., :2]
        root = np.linalg.cholesky(np.asarray(self.covariance_en_m2, dtype=np.float64))
        return offset @ np.linalg.inv(root).T


def locate(
    geometry: Geometry,
    pairs: list[PairDelay],
    receiver_sigma_s: np.ndarray,
) -> Fix:
    """The ML fix from pair delays and each receiver's timing σ (s)."""
    pairs = list(pairs)
    found = _robust(geometry, pairs, receiver_sigma_s)
    while found.outlier is not None and len(pairs) > MIN_PAIRS_AFTER_REJECTION:
        pairs.remove(found.outlier)
        found = _robust(geometry, pairs, receiver_sigma_s)
    receivers = receivers_of(pairs)
    if found.dof > 0 and stats.chi2.sf(found.chi2, found.dof) < OUTLIER_P and len(receivers) >= 5:
        trials = []
        for r in receivers:
            kept = [p for p in pairs if r not in (p.a, p.b)]
            try:
                trial = _locate(geometry, kept, receiver_sigma_s)
            except TooFewPairs:
                continue
            trials.append((trial.chi2 / max(trial.dof, 1), r, trial))
        if trials:
            _, r, best = min(trials, key=lambda x: x[0])
            if best.dof > 0 and stats.chi2.sf(best.chi2, best.dof) > OUTLIER_P:
                return _fix(geometry, best, receiver_sigma_s, dropped=[r])
    return _fix(geometry, found, receiver_sigma_s)


def choose_mode(
    geometry: Geometry, fix: Fix, receiver_sigma_s: np.ndarray, prior: GaussianPrior
) -> Fix:
    """Of the time fix's modes (the estimate and its ``alternatives``), the one where time
    likelihood × ``prior`` is largest, as a fix at that mode with its own time covariance; the
    others become its alternatives. The prior only picks, and only when it is decisive (a
    likelihood ratio of 20 over time's own best): a mode's position comes from time alone.
    Measured on 3-station fixes, the RSS network's Gaussian — tens of km wide and biased on
    networks it was not trained on — dragged good time fixes along their hyperbolae, and
    its small preferences between crossings were right less often than time's own."""
    modes = [(fix.lat, fix.lon, 1.0)] + [
        (a["lat"], a["lon"], a["relative_likelihood"]) for a in fix.alternatives
    ]
    scores = [
        -2 * np.log(max(likelihood, 1e-300)) + float((prior.whitened(lat, lon) ** 2).sum())
        for lat, lon, likelihood in modes
    ]
    order = np.argsort(scores)
    if order[0] == 0 or scores[0] - scores[order[0]] < DECISIVE_PRIOR:
        return fix
    lat, lon, _ = modes[order[0]]
    model = _Model(geometry, fix.pairs, receiver_sigma_s)
    best = scores[order[0]]
    others = [(modes[k][0], modes[k][1], float(np.exp(-(scores[k] - best) / 2)))
              for k in order[1:]]  # fmt: skip
    chosen = _Optimum(lat, lon, float(model.cost(lat, lon)), fix.dof, others,
                      model.residual_s(lat, lon), fix.pairs)  # fmt: skip
    return _fix(geometry, chosen, receiver_sigma_s, dropped=fix.dropped)


def _fix(geometry, found: _Optimum, receiver_sigma_s, dropped: list[int] | None = None) -> Fix:
    """The fix at ``found``: its covariance and each alternative's from the receivers' σ as
    the data show them (:func:`honest_covariance`), computed once, for the answer only."""
    alternatives = [
        {
            "lat": lat, "lon": lon, "relative_likelihood": likelihood,
            "covariance_en_m2": honest_covariance(
                geometry, found.pairs, receiver_sigma_s, lat, lon
            ).tolist(),
        }
        for lat, lon, likelihood in found.modes
    ]  # fmt: skip
    return Fix(
        found.lat, found.lon,
        honest_covariance(geometry, found.pairs, receiver_sigma_s, found.lat, found.lon),
        found.chi2, found.dof, alternatives,
        dropped=dropped or [],
        residual_rms_s=float(np.sqrt(np.mean(found.residual_s**2))),
        residual_s=found.residual_s,
        pairs=found.pairs,
    )  # fmt: skip


def variance_factor(chi2: float, dof: int) -> float:
    """χ²/dof when the residuals say the σ's were too small (the ellipse widens), else 1:
    consistent pairs are no proof that the floors' biases were absent (with 3–4 receivers
    most of a bias goes into the position, not the residuals)."""
    return max(1.0, chi2 / dof) if dof > 0 else 1.0


def empirical_sigma_s(
    residual_s: np.ndarray, pairs: list[PairDelay], receiver_sigma_s: np.ndarray
) -> np.ndarray:
    """Each receiver's timing σ (s) as the fit's residuals show it: its nominal σ, or its own
    arrival misfit when larger, scaled by √(R/(R−3)) for the 3 unknowns (east, north, common
    time) that R arrivals spend — a heteroskedasticity-consistent ("sandwich", HC-style)
    estimate per receiver. The misfit is the receiver's arrival against the median of all
    (the pairs leave the common time free): against their mean, one receiver off by e put
    e/R on each of the others, and on 0.2 s AM-voice and time-signal captures, where a weak
    receiver's wrong peak is common, that widened ellipses whose fix it had not moved. An
    echo pull or a wrong peak is a bias of one receiver, not noise spread over all pairs: a
    χ²/dof over the pairs dilutes it and the robust fit's weights (which down-weight it to move
    the position less) are no σ at all. With 3 or 4 receivers the nominal σ stands: 4 arrivals
    leave one degree of freedom, a single misfit shared by all in fixed proportions that
    cannot tell which receiver is off (:func:`honest_covariance` widens those fixes by χ²/dof
    and along the likelihood's valley instead). The pairs count alike here, unlike in
    :func:`robust_sigma_s`: a weak pair's wander (its errors run to 3–4 σ) rightly widens its
    receivers' σ (README, *The robust fit weighs a receiver by its precise pairs*)."""
    nominal = np.asarray(receiver_sigma_s, dtype=np.float64)
    used = receivers_of(pairs)
    if len(used) < MIN_RECEIVERS_FOR_EMPIRICAL_SIGMA:
        return nominal
    misfit = _arrival_misfit_s(residual_s, incidence(pairs, len(nominal)))
    # pair residuals fix the arrivals only up to a common time: each receiver is measured
    # from the median of all, not their mean (which one receiver's wrong peak moves for all)
    misfit = np.abs(misfit - np.median(misfit[used]))
    scale = np.sqrt((len(used) - 3) / len(used))
    return np.maximum(nominal, misfit / scale)


def honest_covariance(
    geometry: Geometry,
    pairs: list[PairDelay],
    receiver_sigma_s: np.ndarray,
    lat: float,
    lon: float,
) -> np.ndarray:
    """East/north covariance (m²) of a position at (lat, lon): ``(JᵀWJ)⁻¹`` with the receivers'
    :func:`empirical_sigma_s` there; with 3 or 4 receivers, the nominal σ's widened by χ²/dof.
    Where the likelihood's 95 % region bends out of that ellipse, widened along it
    (:mod:`heimdall.tdoa.valley`)."""
    residual = _Model(geometry, pairs, receiver_sigma_s).residual_s(lat, lon)
    sigma = empirical_sigma_s(residual, pairs, receiver_sigma_s)
    model = _Model(geometry, pairs, sigma)
    covariance, chi2 = model.covariance(lat, lon)
    if len(receivers_of(pairs)) >= MIN_RECEIVERS_FOR_EMPIRICAL_SIGMA:
        return covariance
    factor = variance_factor(chi2, len(pairs) - 2)
    covariance = covariance * factor
    # three or four receivers: a long, bent likelihood valley (a transmitter far outside them,
    # a fourth joined by one weak pair) holds points its curvature's ellipse misses: widen it
    # along the valley (tdoa.valley)
    region = valley_points(
        lambda la, lo: model.cost(la, lo) / factor, lat, lon, covariance, VALLEY_LIMIT,
        model.max_sigma_m,
    )  # fmt: skip
    return covering(covariance, region, VALLEY_LIMIT)


def max_sigma_m(geometry: Geometry) -> float:
    """The largest position σ (m) a fix's covariance may hold: ``MAX_SIGMA_EXTENTS`` × the
    receivers' extent (at least ``MIN_MARGIN_M``); reached only along a direction the delays
    do not constrain."""
    frame = frame_at_centroid(geometry.lats, geometry.lons)
    extent_m = float(np.ptp(frame.to_enu(geometry.lats, geometry.lons)[:, :2], axis=0).max())
    return MAX_SIGMA_EXTENTS * max(extent_m, MIN_MARGIN_M)


def unplaced(geometry: Geometry, fix: Fix) -> bool:
    """The fix's σ along its major axis is at (``UNPLACED_SHARE`` of) :func:`max_sigma_m`: the
    pairs put the transmitter on a curve, not at a point. On the simulator, the "fixes"
    that ``refuse_unplaced`` now refuses were 16–277 km off (median 88 km; 0.2 s AM-voice and
    time-signal captures, seed 777001), each 95 % ellipse reaching across the network: a
    position on a map that means nothing. A fix on three receivers never is: far outside
    their triangle the valley is long by geometry, not for want of signal, and its ellipse and
    the other crossing show it (:func:`honest_covariance`)."""
    if len(receivers_of(fix.pairs)) < MIN_RECEIVERS_TO_PLACE:
        return False
    largest_m2 = float(np.linalg.eigvalsh(np.asarray(fix.covariance_en_m2)).max())
    return largest_m2 >= (UNPLACED_SHARE * max_sigma_m(geometry)) ** 2


def receivers_of(pairs: list[PairDelay]) -> list[int]:
    """The receivers (rows of the aligned set) the pairs join."""
    return sorted({p.a for p in pairs} | {p.b for p in pairs})


def _robust(geometry, pairs, receiver_sigma_s) -> _Optimum:
    """:func:`_locate` with each receiver's timing σ reweighted from its own residual
    (iteratively reweighted least squares for a soft-L1 loss): an echo moves one receiver's
    arrival by a heavy-tailed amount, and a Gaussian fit lets one such receiver pull the rest.
    The weights place the estimate; its covariance is the caller's (:func:`_fix`)."""
    sigma = np.asarray(receiver_sigma_s, dtype=np.float64)
    fix = _locate(geometry, pairs, sigma)
    for _ in range(ROBUST_ITERATIONS):
        fix = _locate(geometry, pairs, robust_sigma_s(fix.residual_s, pairs, sigma))
    return fix


def robust_sigma_s(
    residual_s: np.ndarray, pairs: list[PairDelay], receiver_sigma_s: np.ndarray
) -> np.ndarray:
    """Each receiver's σ (s) reweighted for a soft-L1 loss: σ·(1 + (z/``ROBUST_SCALE``)²)^¼,
    z its arrival misfit over σ. The misfit is fitted to the pairs each weighed by its own σ
    and, with 5 or more receivers, measured from the arrivals' precision-weighted mean: neither
    a weak pair's wrong peak nor a receiver timed only by weak pairs is laid on receivers whose
    strong pairs the fit would then give away. With 3 or 4 the pairs cannot say which receiver
    is off and the plain mean stands (README, *The robust fit weighs a receiver by its precise
    pairs* and *… measures a receiver's misfit from the precise arrivals*)."""
    sigma = np.asarray(receiver_sigma_s, dtype=np.float64)
    pair_sigma_s = np.array([p.sigma_s for p in pairs])
    rows = incidence(pairs, len(sigma))
    misfit = _arrival_misfit_s(residual_s, rows, pair_sigma_s)
    if len(receivers_of(pairs)) >= MIN_RECEIVERS_FOR_EMPIRICAL_SIGMA:
        # the pairs leave the common time free: each arrival's precision is Σ 1/σ² of its pairs
        precision = np.abs(rows).T @ pair_sigma_s**-2.0
        misfit = misfit - np.average(misfit, weights=precision)
    z = misfit / sigma
    return sigma * (1.0 + (z / ROBUST_SCALE) ** 2) ** 0.25


def _arrival_misfit_s(
    residual_s: np.ndarray, rows: np.ndarray, pair_sigma_s: np.ndarray | None = None
) -> np.ndarray:
    """Per receiver, the arrival-time misfit (zero mean) that best explains the pair residuals
    (``rows``: the pairs' :func:`incidence`), each pair weighed by 1/``pair_sigma_s`` (None:
    all alike)."""
    weight = np.ones(len(rows)) if pair_sigma_s is None else 1.0 / pair_sigma_s
    return np.linalg.pinv(rows * weight[:, None]) @ (residual_s * weight)


def incidence(pairs: list[PairDelay], count: int) -> np.ndarray:
    """``[P, R]``: +1 at each pair's ``a``, −1 at its ``b`` (pair delay = A · arrivals)."""
    matrix = np.zeros((len(pairs), count))
    matrix[np.arange(len(pairs)), [p.a for p in pairs]] = 1.0
    matrix[np.arange(len(pairs)), [p.b for p in pairs]] = -1.0
    return matrix


def _locate(geometry, pairs, receiver_sigma_s) -> _Optimum:
    """The likelihood's optima with the pairs weighted by ``receiver_sigma_s``."""
    if len(pairs) < 2:
        raise TooFewPairs(f"only {len(pairs)} receiver pairs correlate; a fix needs 2")
    model = _Model(geometry, pairs, receiver_sigma_s)
    frame = frame_at_centroid(geometry.lats, geometry.lons)
    enu = frame.to_enu(geometry.lats, geometry.lons)[:, :2]
    extent = float(np.ptp(enu, axis=0).max())
    margin = max(MIN_MARGIN_M, 0.5 * extent)
    lo, hi = enu.min(0) - margin, enu.max(0) + margin
    east = np.linspace(lo[0], hi[0], GRID_POINTS)
    north = np.linspace(lo[1], hi[1], GRID_POINTS)
    ee, nn = np.meshgrid(east, north)
    lat, lon = frame.to_latlon(ee, nn)
    cost = model.cost(lat, lon)
    starts = _local_minima(cost)[:6]
    optima = []
    for r, c in starts:
        found = model.refine(float(lat[r, c]), float(lon[r, c]))
        east, north = frame.to_enu(found[0], found[1])[:2]
        # Gauss–Newton can run down a hyperbola's asymptote far from any receiver: an
        # optimum outside twice the searched area is not one
        if lo[0] - margin <= east <= hi[0] + margin and lo[1] - margin <= north <= hi[1] + margin:
            optima.append(found)
        else:
            optima.append((float(lat[r, c]), float(lon[r, c]), float(cost[r, c])))
    optima = _distinct(optima)
    best = min(optima, key=lambda o: o[2])
    modes = [
        (o[0], o[1], float(np.exp(-(o[2] - best[2]) / 2)))
        for o in sorted(optima, key=lambda o: o[2])
        if o is not best and np.exp(-(o[2] - best[2]) / 2) >= ALTERNATIVE_RATIO
    ][:MAX_ALTERNATIVES]
    residual = model.residual_s(best[0], best[1])
    normalized = np.abs(residual) / np.array([p.sigma_s for p in pairs])
    worst = int(np.argmax(normalized))
    return _Optimum(
        best[0], best[1], best[2], len(pairs) - 2, modes, residual, list(pairs),
        outlier=pairs[worst] if normalized[worst] > OUTLIER_SIGMAS else None,
    )  # fmt: skip


class _Model:
    """Whitened residuals of the pair delays at a position."""

    def __init__(self, geometry, pairs, receiver_sigma_s) -> None:
        self.geometry = geometry
        count = len(geometry.lats)
        self.a = np.array([p.a for p in pairs])
        self.b = np.array([p.b for p in pairs])
        self.measured = np.array([p.delay_s for p in pairs])
        rows = incidence(pairs, count)
        receiver = np.asarray(receiver_sigma_s, dtype=np.float64)
        own = np.array([p.stat_s**2 for p in pairs])
        cov = rows @ np.diag(receiver**2) @ rows.T + np.diag(np.maximum(own, 1e-18))
        self.whiten = np.linalg.inv(np.linalg.cholesky(cov))
        self.max_sigma_m = max_sigma_m(geometry)

    def residual_s(self, lat, lon) -> np.ndarray:
        tof = self.geometry.delays_s(lat, lon)
        return self.measured - (tof[..., self.a] - tof[..., self.b])

    def whitened(self, lat, lon) -> np.ndarray:
        """The residuals, decorrelated and divided by their σ's: ``[..., P]``."""
        return self.residual_s(lat, lon) @ self.whiten.T

    def cost(self, lat, lon) -> np.ndarray:
        """−2 log likelihood, up to a constant."""
        return (self.whitened(lat, lon) ** 2).sum(-1)

    def refine(self, lat: float, lon: float) -> tuple[float, float, float]:
        """Gauss–Newton with Levenberg damping from a grid point: (lat, lon, cost)."""
        damping = 1e-3
        current = float(self.cost(lat, lon))
        frame = LocalFrame(lat, lon)
        jac, z = self._jacobian(frame)  # recomputed only when the point moves
        for _ in range(50):
            h = jac.T @ jac
            step = np.linalg.solve(h + damping * np.diag(np.diag(h) + 1e-12), -jac.T @ z)
            new_lat, new_lon = (float(v) for v in frame.to_latlon(*step))
            new = float(self.cost(new_lat, new_lon))
            if new < current:
                lat, lon, current = new_lat, new_lon, new
                damping = max(damping / 10, 1e-9)
                if np.hypot(*step) < 0.01:
                    break
                frame = LocalFrame(lat, lon)
                jac, z = self._jacobian(frame)
            else:
                damping *= 10
                if damping > 1e6:
                    break
        return lat, lon, current

    def _jacobian(self, frame: LocalFrame, step_m: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """d(whitened residuals)/d(east, north) at the frame's origin, by forward differences."""
        z = self.whitened(frame.lat0_deg, frame.lon0_deg)
        cols = []
        for d in np.eye(2) * step_m:
            lat, lon = frame.to_latlon(d[0], d[1])
            cols.append((self.whitened(float(lat), float(lon)) - z) / step_m)
        return np.stack(cols, axis=1), z

    def covariance(self, lat: float, lon: float) -> tuple[np.ndarray, float]:
        """(JᵀJ)⁻¹ in the tangent plane at the estimate (east, north, m²) and χ² of the data.

        Along a direction the delays do not constrain (a transmitter far outside three
        receivers, on the line of two of them) (JᵀJ)⁻¹ grows without bound; there the σ is held
        at MAX_SIGMA_EXTENTS × the receivers' extent: "anywhere around this network", not a
        number of millions of km that no map can draw."""
        jac, z = self._jacobian(LocalFrame(lat, lon))
        information = jac.T @ jac
        values, vectors = np.linalg.eigh(information)
        floor = 1.0 / self.max_sigma_m**2
        bounded = (vectors / np.maximum(values, floor)) @ vectors.T
        return bounded, float((z**2).sum())


def _local_minima(cost: np.ndarray) -> list[tuple[int, int]]:
    """Grid cells lower than their 8 neighbours, best first."""
    padded = np.pad(cost, 1, constant_values=np.inf)
    centre = padded[1:-1, 1:-1]
    lower = np.ones_like(centre, bool)
    for dr in (-1, 0, 1):
        for dc in (-1, 0, 1):
            if dr or dc:
                lower &= centre <= padded[1 + dr : padded.shape[0] - 1 + dr,
                                          1 + dc : padded.shape[1] - 1 + dc]  # fmt: skip
    cells = list(zip(*np.nonzero(lower), strict=True))
    return sorted(cells, key=lambda rc: cost[rc])


def _distinct(optima: list[tuple[float, float, float]], within_m: float = 200.0):
    kept: list[tuple[float, float, float]] = []
    for o in sorted(optima, key=lambda o: o[2]):
        if all(np.hypot(*LocalFrame(k[0], k[1]).to_enu(o[0], o[1])[:2]) > within_m for k in kept):
            kept.append(o)
    return kept
