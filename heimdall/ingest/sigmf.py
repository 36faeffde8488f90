"""SigMF recordings and collections ↔ :class:`Recording`, through the ``sigmf`` package.

Read: a recording is a ``.sigmf-meta`` + ``.sigmf-data`` pair or a ``.sigmf`` archive; a
``.sigmf-collection`` names one recording per receiver in ``core:streams`` and is one job.
Per recording we need ``core:datatype``, ``core:sample_rate`` and, for the capture segment
used, ``core:frequency``, ``core:datetime`` (its fraction parsed to ns as text) and
``core:geolocation`` (GeoJSON ``[lon, lat, alt]``, in the capture or in global). The clock's
quality comes from the ``heimdall`` extension: ``heimdall:clock_source`` (gnss|ntp|free) and
``heimdall:time_uncertainty_ns``; ``heimdall:receiver_id`` names the receiver (default: the
recording's base name). Write: ``write_collection`` for simulated scenarios.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import sigmf
from sigmf import SigMFCollection, SigMFFile
from sigmf.error import SigMFError
from sigmf.sigmffile import dtype_info

from heimdall.ingest.recording import IngestError, Recording, RecordingSet, gather
from heimdall.ingest.timestamps import TimestampError, ns_to_rfc3339, rfc3339_to_ns
from heimdall.schemas.job import MIN_SAMPLES, Clock

EXTENSION = {"name": "heimdall", "version": "1.0.0", "optional": True}
DIRECT = ("cf32_le", "ci16_le", "cu8")  # the job's own datatypes: bytes pass through
META, DATA, COLLECTION = ".sigmf-meta", ".sigmf-data", ".sigmf-collection"
ARCHIVES = (".sigmf", ".sigmf.gz", ".sigmf.xz", ".sigmf.zip")  # plain or compressed tar/zip
RECORDING_SUFFIXES = (META, DATA, *ARCHIVES)
Position = tuple[float, float, float]


def read_sets(
    paths: Sequence[str | Path], stations: dict[str, Position] | None = None
) -> list[RecordingSet | IngestError]:
    """One :class:`RecordingSet` per collection (or the :class:`IngestError` refusing it);
    loose recordings given together form one.

    A directory stands for its collections, or for its recordings when it holds none.
    """
    collections: list[Path] = []
    loose: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.glob(f"*{COLLECTION}"))
            collections += found
            loose += [] if found else recordings_in(path)
        elif path.name.endswith(COLLECTION):
            collections.append(path)
        elif path.name.endswith(RECORDING_SUFFIXES):
            loose.append(_base(path))
        else:
            collections.append(path)  # refused with its reason by read_collection
    jobs: list[tuple[Any, ...]] = [(read_collection, c, stations) for c in collections]
    if loose:
        unique = list(dict.fromkeys(loose))
        label = unique[0].name if len(unique) == 1 else f"{len(unique)} recordings"
        jobs.append((_set, label, unique, stations))
    out: list[RecordingSet | IngestError] = []
    for reader, *args in jobs:
        try:
            out.append(reader(*args))
        except IngestError as exc:
            out.append(exc)
    return out


def recordings_in(directory: Path) -> list[Path]:
    """Base paths of the recordings (pairs or archives) in ``directory``."""
    bases = {_base(p) for p in directory.iterdir() if p.name.endswith((META, *ARCHIVES))}
    return sorted(bases)


def _base(path: Path) -> Path:
    for suffix in RECORDING_SUFFIXES:
        if path.name.endswith(suffix):
            return path.with_name(path.name[: -len(suffix)])
    return path


def read_collection(path: Path, stations: dict[str, Position] | None = None) -> RecordingSet:
    """A ``.sigmf-collection`` and the recordings its ``core:streams`` name."""
    if not path.exists():
        raise IngestError(str(path), "no such file or directory")
    if not path.name.endswith(COLLECTION):
        raise IngestError(
            str(path), "not a SigMF file (.sigmf-meta/-data, .sigmf archive, .sigmf-collection)"
        )
    try:
        metadata = json.loads(path.read_text())
        collection = SigMFCollection(metadata=metadata, base_path=path.parent)
    except (OSError, ValueError, SigMFError, KeyError, TypeError) as exc:
        raise IngestError(str(path), f"unreadable collection: {exc}") from exc
    names = collection.get_stream_names()
    if not names:
        raise IngestError(str(path), "collection.core:streams names no recording")
    bases = []
    for name in names:
        if not isinstance(name, str) or not name:
            raise IngestError(str(path), f"collection.core:streams has a bad name {name!r}")
        base = path.parent / name
        if recording_file(base) is None:
            raise IngestError(str(path), f"stream {name!r}: no {name}{META} or {name}.sigmf")
        bases.append(base)
    found = _set(path.name, bases, stations)
    found.files.insert(0, str(path))
    return found


def _set(label: str, bases: list[Path], stations: dict[str, Position] | None) -> RecordingSet:
    files = [str(f) for base in bases for f in _files_of(base)]
    found = gather(label, [partial(read_recording, b, stations) for b in bases], files)
    found.recordings = pick_segments(found.recordings)
    return found


def _meta_path(base: Path) -> Path:
    return base.with_name(base.name + META)


def recording_file(base: Path) -> Path | None:
    """The file sigmf opens for a recording: its ``.sigmf-meta``, else an archive."""
    for suffix in (META, *ARCHIVES):
        if base.with_name(base.name + suffix).is_file():
            return base.with_name(base.name + suffix)
    return None


def _files_of(base: Path) -> list[Path]:
    candidates = [base.with_name(base.name + s) for s in RECORDING_SUFFIXES]
    return [p for p in candidates if p.is_file()]


def read_recording(base: Path, stations: dict[str, Position] | None = None) -> list[Recording]:
    """Every usable capture segment of one recording, as a :class:`Recording` each."""
    found = recording_file(base)
    if found is None:
        raise IngestError(str(base), f"no {base.name}{META} and no archive")
    where = str(found)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            handle = sigmf.fromfile(where, autoscale=True)
        except json.JSONDecodeError as exc:
            raise IngestError(where, f"the metadata is not JSON ({exc})") from exc
        except (OSError, ValueError, SigMFError, KeyError, TypeError) as exc:
            raise IngestError(where, f"unreadable SigMF recording: {exc}") from exc
    if not isinstance(handle, SigMFFile):
        raise IngestError(where, "expected a recording, found a collection")
    notes = [
        f"sigmf: {w.message}" for w in caught if not issubclass(w.category, DeprecationWarning)
    ]
    reader = _Reader(handle, where, base.name)
    segments = [reader.segment(i, stations or {}) for i in range(len(reader.captures))]
    usable = [s for s in segments if s.num_samples >= MIN_SAMPLES]
    if not usable:
        raise IngestError(where, f"no capture segment holds {MIN_SAMPLES} samples")
    for s in usable:
        s.notes = notes + s.notes
    return usable


class _Reader:
    """Field checks of one recording, each error naming the SigMF field."""

    def __init__(self, handle: SigMFFile, where: str, name: str) -> None:
        self.handle, self.where = handle, where
        glob = handle.get_global_info()
        self.glob = glob
        self.datatype = str(glob.get("core:datatype", ""))
        try:
            self.info = dtype_info(self.datatype)
        except (SigMFError, ValueError, TypeError) as exc:
            raise IngestError(where, f"global.core:datatype {self.datatype!r}: {exc}") from exc
        if not self.info["is_complex"]:
            raise IngestError(
                where, f"global.core:datatype {self.datatype!r} is real-valued; IQ is complex"
            )
        channels = glob.get("core:num_channels", 1)
        if channels != 1:
            raise IngestError(
                where, f"global.core:num_channels is {channels}; one channel per recording"
            )
        rate = glob.get("core:sample_rate")
        if not isinstance(rate, int | float) or not 0 < rate < 1e10:
            raise IngestError(where, f"global.core:sample_rate is {rate!r}; need a rate in Hz")
        self.rate_hz = float(rate)
        self.receiver_id = str(glob.get("heimdall:receiver_id") or name)[:64]
        self.captures = handle.get_captures() or [{"core:sample_start": 0}]
        self.total = int(handle.sample_count)

    def segment(self, index: int, stations: dict[str, Position]) -> Recording:
        capture = self.captures[index]
        field = f"captures[{index}]"
        start = int(capture.get("core:sample_start", 0))
        end = (
            int(self.captures[index + 1].get("core:sample_start", self.total))
            if index + 1 < len(self.captures)
            else self.total
        )
        frequency = capture.get("core:frequency")
        if not isinstance(frequency, int | float) or not 0 < frequency <= 1e12:
            raise IngestError(self.where, f"{field}.core:frequency is {frequency!r}; need Hz > 0")
        stamp = capture.get("core:datetime")
        if stamp is None:
            raise IngestError(
                self.where,
                f"{field}.core:datetime is missing; a job needs the time of its first sample: "
                'add it to the capture segment (RFC 3339 UTC, e.g. "2026-12-06T10:00:00.123456Z")',
            )
        try:
            time_ns = rfc3339_to_ns(stamp)
        except TimestampError as exc:
            raise IngestError(self.where, f"{field}.core:datetime: {exc}") from exc
        lat, lon, alt = self._position(capture, field, stations)
        datatype = self._job_datatype()
        return Recording(
            source=self.where,
            receiver_id=self.receiver_id,
            lat=lat,
            lon=lon,
            alt_m=alt,
            sample_rate_hz=self.rate_hz,
            center_frequency_hz=float(frequency),
            time_ns=time_ns,
            clock=self._clock(capture, field),
            datatype=datatype,
            num_samples=max(end - start, 0),
            read=lambda first, count: self._read(start + first, count, datatype),
            notes=[] if self.datatype in DIRECT else [f"{self.datatype} converted to {datatype}"],
        )  # fmt: skip

    def _position(self, capture: dict, field: str, stations: dict[str, Position]) -> Position:
        point = capture.get("core:geolocation", self.glob.get("core:geolocation"))
        if point is None:
            if self.receiver_id in stations:
                return stations[self.receiver_id]
            raise IngestError(
                self.where,
                f"no core:geolocation in {field} or global; give --station "
                f"{self.receiver_id}=LAT,LON",
            )
        coords = point.get("coordinates") if isinstance(point, dict) else None
        ok = isinstance(coords, list) and len(coords) in (2, 3)
        ok = ok and all(isinstance(c, int | float) for c in coords)
        if not ok or not (-180 <= coords[0] <= 180 and -90 <= coords[1] <= 90):
            raise IngestError(
                self.where,
                f"core:geolocation {point!r} is not a GeoJSON Point [lon, lat(, alt)] "
                "(longitude first)",
            )
        return float(coords[1]), float(coords[0]), float(coords[2]) if len(coords) == 3 else 0.0

    def _clock(self, capture: dict, field: str) -> Clock:
        source = capture.get("heimdall:clock_source", self.glob.get("heimdall:clock_source"))
        spread = capture.get(
            "heimdall:time_uncertainty_ns", self.glob.get("heimdall:time_uncertainty_ns")
        )
        if source is None:
            return Clock()
        try:
            return Clock(source=source, uncertainty_ns=spread)
        except ValueError as exc:
            raise IngestError(
                self.where,
                f"heimdall:clock_source {source!r} / heimdall:time_uncertainty_ns {spread!r} "
                f"({field} or global): need gnss|ntp|free and ns ≥ 0",
            ) from exc

    def _job_datatype(self) -> str:
        if self.datatype in DIRECT:
            return self.datatype
        small_ints = self.info["is_fixedpoint"] and self.info["component_size"] <= 2
        return "ci16_le" if small_ints else "cf32_le"

    def _read(self, start: int, count: int, datatype: str) -> bytes:
        """``count`` samples from ``start`` as bytes of ``datatype``."""
        handle, size = self.handle, self.info["sample_size"]
        if self.datatype in DIRECT and handle.data_file is not None:
            with open(handle.data_file, "rb") as fh:
                fh.seek(getattr(handle, "data_offset", 0) + start * size)
                data = fh.read(count * size)
            if len(data) != count * size:
                raise IngestError(self.where, f"data ends before sample {start + count}")
            return data
        samples = np.asarray(handle.read_samples(start, count), np.complex64)
        if datatype == "cf32_le":
            return samples.astype("<c8").tobytes()
        if datatype == "cu8":
            raw = np.stack([samples.real, samples.imag], 1) * 128.0 + 128.0
            return np.clip(np.round(raw), 0, 255).astype(np.uint8).tobytes()
        raw = np.stack([samples.real, samples.imag], 1) * 32768.0
        return np.clip(np.round(raw), -32768, 32767).astype("<i2").tobytes()


def pick_segments(candidates: list[list[Recording]]) -> list[Recording]:
    """One capture segment per receiver: the one overlapping the others' segments most."""
    chosen = []
    for i, options in enumerate(candidates):
        others = [s for j, segs in enumerate(candidates) if j != i for s in segs]

        def overlap(s: Recording, others: list[Recording] = others) -> tuple[int, int]:
            shared = sum(
                max(0, min(s.end_ns, o.end_ns) - max(s.time_ns, o.time_ns)) for o in others
            )
            return shared, s.num_samples

        chosen.append(max(options, key=overlap))
    return chosen


def write_collection(
    directory: Path,
    name: str,
    recordings: Sequence[dict[str, Any]],
    collection_fields: dict[str, Any] | None = None,
) -> Path:
    """Write one recording per entry and a ``name.sigmf-collection`` naming them all.

    Each entry: ``receiver_id``, ``lat``, ``lon``, ``alt_m``, ``sample_rate_hz``,
    ``center_frequency_hz``, ``time_ns``, ``clock`` (:class:`Clock`), ``datatype`` and ``iq``
    (bytes of that datatype).
    """
    directory.mkdir(parents=True, exist_ok=True)
    metafiles = []
    for rec in recordings:
        base = directory / f"{name}_{rec['receiver_id']}"
        base.with_name(base.name + DATA).write_bytes(rec["iq"])
        clock: Clock = rec["clock"]
        global_info = {
            "core:datatype": rec["datatype"],
            "core:sample_rate": rec["sample_rate_hz"],
            "core:version": sigmf.__specification__,
            "core:recorder": "heimdall simulate",
            "core:extensions": [EXTENSION],
            "heimdall:receiver_id": rec["receiver_id"],
            "heimdall:clock_source": clock.source,
        }
        if clock.uncertainty_ns is not None:
            global_info["heimdall:time_uncertainty_ns"] = clock.uncertainty_ns
        handle = SigMFFile(global_info=global_info, data_file=base.with_name(base.name + DATA))
        handle.add_capture(
            0,
            metadata={
                "core:frequency": rec["center_frequency_hz"],
                "core:datetime": ns_to_rfc3339(rec["time_ns"]),
                "core:geolocation": {
                    "type": "Point",
                    "coordinates": [rec["lon"], rec["lat"], rec["alt_m"]],
                },
            },
        )
        handle.tofile(_meta_path(base), overwrite=True)
        metafiles.append(_meta_path(base).name)
    collection = SigMFCollection(metafiles=metafiles, base_path=directory)
    collection.set_collection_field("core:extensions", [EXTENSION])
    for key, value in (collection_fields or {}).items():
        collection.set_collection_field(key, value)
    path = directory / f"{name}{COLLECTION}"
    collection.tofile(path, overwrite=True)
    return path
