"""The drop folder: each complete recording set that lands is submitted once, then moved.

A set is a ``.sigmf-collection`` with the recordings it names, KiwiSDR IQ WAVs whose names
give the same start, a folder holding either (moved as a whole), or — as ``heimdall ingest
sigmf`` takes them — the loose SigMF recordings no collection names, together, once the whole
folder has been quiet for ``settle_s``. It is complete when every file is there and none has
changed for ``settle_s``. After submitting, its files go to
``done/`` (with ``<set>.job.json``); a set or file that cannot be used goes to ``rejected/``
with ``<file>.reason``. Job ids come from the content (see ``assemble``), so a set submitted
again after a crash is the same job. A bad file never stops the folder; a fleet that cannot be
reached leaves the set in place for the next poll. Submitting is a function handed in: this
module never imports Celery or Redis.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from heimdall.ingest import kiwi, sigmf
from heimdall.ingest.assemble import Assembled, assemble
from heimdall.ingest.recording import IngestError

log = logging.getLogger(__name__)

DONE, REJECTED = "done", "rejected"
IGNORED_SUFFIXES = (".part", ".tmp", ".reason", "~")  # files still being written
RECORDING_SUFFIXES = sigmf.RECORDING_SUFFIXES


@dataclass
class Outcome:
    """What happened to one set: ``submitted`` (with its job id), ``rejected`` or ``waiting``."""

    status: str
    label: str
    job_id: str | None = None
    detail: list[str] = field(default_factory=list)

    def line(self) -> str:
        head = f"{self.status:9} {self.label}"
        if self.job_id:
            head += f" → job {self.job_id}"
        return "\n".join([head] + [f"          {d}" for d in self.detail])


@dataclass
class _Set:
    label: str
    files: list[Path]
    read: Callable[[], list]  # → items of kiwi/sigmf read_sets


class DropFolder:
    """Poll ``directory``; ``submit(assembled) → job id`` sends a job to the fleet."""

    def __init__(
        self,
        directory: Path,
        submit: Callable[[Assembled], str],
        stations: dict[str, tuple[float, float, float]] | None = None,
        job_fields: dict[str, Any] | None = None,
        settle_s: float = 3.0,
        give_up_s: float = 60.0,
    ) -> None:
        self.directory = directory
        self.submit = submit
        self.stations = stations or {}
        self.job_fields = job_fields or {}
        self.settle_s = settle_s
        self.give_up_s = max(give_up_s, settle_s)
        for sub in (DONE, REJECTED):
            (directory / sub).mkdir(parents=True, exist_ok=True)

    def run(
        self, interval_s: float = 1.0, once: bool = False, report: Callable[[str], Any] = print
    ) -> None:
        """Poll until interrupted (or one pass with ``once``), reporting each outcome."""
        while True:
            for outcome in self.poll():
                if outcome.status != "waiting":  # waiting is said once per poll in the log
                    report(outcome.line())
            if once:
                return
            time.sleep(interval_s)

    def poll(self) -> list[Outcome]:
        """One pass over the folder."""
        try:
            entries = list(self.directory.iterdir())
        except OSError as exc:
            log.error("cannot list %s: %s", self.directory, exc)
            return []
        outcomes = []
        for folder in sorted(p for p in entries if self._set_folder(p)):
            if self._folder_settled(folder):
                outcomes.append(self._handle_folder(folder))
        for found in self._sets([p for p in entries if self._candidate(p)]):
            if all(self._settled(p, self.settle_s) for p in found.files):
                outcomes.append(self._handle(found))
        return outcomes

    def holds_work(self) -> bool:
        """Something is still in the folder to be dealt with (not yet settled, or waiting for
        the fleet): every set handled leaves it for done/ or rejected/."""
        try:
            entries = list(self.directory.iterdir())
        except OSError:
            return False
        return any(self._set_folder(p) or self._candidate(p) for p in entries)

    def _set_folder(self, path: Path) -> bool:
        """A folder dropped in holds one set (or several collections)."""
        skip = (DONE, REJECTED, "gnss_pos")
        return path.is_dir() and not path.name.startswith(".") and path.name not in skip

    def _folder_settled(self, folder: Path) -> bool:
        files = [p for p in folder.rglob("*") if p.is_file()]
        return bool(files) and all(self._settled(p, self.settle_s) for p in files)

    def _handle_folder(self, folder: Path) -> Outcome:
        """Every job in a dropped folder; the folder moves to done/ if any was submitted."""
        try:
            items = self._read_folder(folder)
        except Exception as exc:  # a reader bug on a strange file must not stop the folder
            log.exception("reading %s failed", folder)
            items = [IngestError(str(folder), f"unexpected error: {type(exc).__name__}: {exc}")]
        made, problems = [], []
        for item in items:
            try:
                if isinstance(item, IngestError):
                    raise item
                made.append(assemble(item, **self.job_fields))
                problems += [f"refused: {r}" for r in item.refused]
            except IngestError as exc:
                problems.append(str(exc))
        if not made:
            self._reject([folder], "; ".join(problems) or "nothing usable")
            return Outcome("rejected", folder.name, detail=problems)
        try:
            job_ids = [self.submit(a) for a in made]  # content ids: a retry is the same job
        except Exception as exc:  # the fleet is unreachable: try again next poll
            log.warning("could not submit %s (will retry): %s", folder.name, exc)
            return Outcome("waiting", folder.name, detail=[f"submit failed: {exc}"])
        notes = [n for a in made for n in a.notes] + problems
        record = {"job_ids": job_ids, "notes": notes}
        target = self.directory / DONE
        _unique(target / f"{folder.name}.job.json").write_text(json.dumps(record, indent=2) + "\n")
        _move(folder, target)
        return Outcome("submitted", folder.name, ", ".join(job_ids), notes)

    def _read_folder(self, folder: Path) -> list:
        names = [p.name for p in folder.iterdir()]
        if any(n.endswith((sigmf.COLLECTION, *RECORDING_SUFFIXES)) for n in names):
            return sigmf.read_sets([folder], self.stations)
        wavs = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".wav")
        if wavs:
            return kiwi.read_sets(wavs, self.stations)
        return [IngestError(str(folder), "holds no SigMF recording and no KiwiSDR *_iq.wav")]

    def _candidate(self, path: Path) -> bool:
        name = path.name
        return path.is_file() and not name.startswith(".") and not name.endswith(IGNORED_SUFFIXES)

    def _settled(self, path: Path, age_s: float) -> bool:
        try:
            return time.time() - path.stat().st_mtime >= age_s
        except OSError:
            return False

    def _sets(self, files: list[Path]) -> list[_Set]:
        """Group the folder's files into sets; stray files become sets that get rejected."""
        claimed: set[Path] = set()
        found = []
        for path in sorted(p for p in files if p.name.endswith(sigmf.COLLECTION)):
            members = [path, *self._streams(path)]
            claimed.update(members)
            found.append(_Set(path.name, members, lambda p=path: self._read_sigmf(p)))
        wavs = [p for p in files if p.suffix.lower() == ".wav"]
        claimed.update(wavs)
        for group in self._kiwi_groups(wavs, found):
            found.append(
                _Set(group[0].name, group, lambda g=group: kiwi.read_sets(g, self.stations))
            )
        loose = sorted(p for p in set(files) - claimed if p.name.endswith(RECORDING_SUFFIXES))
        if loose and all(self._settled(p, self.settle_s) for p in files):
            label = loose[0].name if len(loose) == 1 else f"{len(loose)} loose recording files"
            found.append(_Set(label, loose, lambda g=loose: sigmf.read_sets(g, self.stations)))
        for path in sorted(set(files) - claimed - set(loose)):
            found.append(_Set(path.name, [path], lambda p=path: [_unknown(p)]))
        return found

    def _streams(self, collection: Path) -> list[Path]:
        """Files of the recordings a collection names (those present now)."""
        try:
            streams = json.loads(collection.read_text())["collection"]["core:streams"]
            names = [s["name"] for s in streams]
        except (OSError, ValueError, KeyError, TypeError):
            return []  # read_collection will say what is wrong
        members = []
        for name in names:
            base = collection.parent / str(name)
            members += [
                base.with_name(base.name + s)
                for s in RECORDING_SUFFIXES
                if base.with_name(base.name + s).is_file()
            ]
        return members

    def _read_sigmf(self, collection: Path) -> list:
        missing = _missing_streams(collection)
        if missing and not self._settled(collection, self.give_up_s):
            return []  # the rest may still be on its way
        return sigmf.read_sets([collection], self.stations)

    def _kiwi_groups(self, wavs: list[Path], found: list[_Set]) -> list[list[Path]]:
        named, strays = [], []
        for path in wavs:
            try:
                kiwi.parse_name(path)
                named.append(path)
            except IngestError:
                strays.append(path)
        for path in strays:
            found.append(_Set(path.name, [path], lambda p=path: kiwi.read_sets([p])))
        return kiwi.group_by_start(named)

    def _handle(self, found: _Set) -> Outcome:
        try:
            items = found.read()
        except Exception as exc:  # a reader bug on a strange file must not stop the folder
            log.exception("reading %s failed", found.label)
            items = [IngestError(found.label, f"unexpected error: {type(exc).__name__}: {exc}")]
        if not items:
            return Outcome("waiting", found.label, detail=["recordings named by it are missing"])
        outcome = Outcome("rejected", found.label)
        used: set[Path] = set()
        for item in items:
            if isinstance(item, IngestError):
                outcome.detail.append(str(item))
                continue
            try:
                assembled = assemble(item, **self.job_fields)
            except IngestError as exc:
                outcome.detail.append(str(exc))
                continue
            try:
                job_id = self.submit(assembled)
            except Exception as exc:  # the fleet is unreachable: try again next poll
                log.warning("could not submit %s (will retry): %s", found.label, exc)
                return Outcome("waiting", found.label, detail=[f"submit failed: {exc}"])
            refused = {f for r in item.refused for f in _recording_files(Path(r.path))}
            for refusal in item.refused:
                self._reject(_recording_files(Path(refusal.path)), str(refusal))
                outcome.detail.append(f"refused: {refusal}")
            kept = [Path(f) for f in item.files if Path(f) not in refused]
            self._accept(kept, found.label, job_id, assembled.notes)
            used.update(kept)
            used.update(refused)
            outcome.status, outcome.job_id = "submitted", job_id
            outcome.detail = assembled.notes + outcome.detail
        rest = [p for p in found.files if p not in used and p.exists()]
        if rest:
            self._reject(rest, "; ".join(outcome.detail) or "not usable")
        return outcome

    def _accept(self, files: list[Path], label: str, job_id: str, notes: list[str]) -> None:
        target = self.directory / DONE
        record = {"job_id": job_id, "files": [f.name for f in files], "notes": notes}
        _unique(target / f"{label}.job.json").write_text(json.dumps(record, indent=2) + "\n")
        for f in files:
            _move(f, target)

    def _reject(self, files: list[Path], reason: str) -> None:
        target = self.directory / REJECTED
        for f in files:
            if f.exists():
                moved = _move(f, target)
                moved.with_name(moved.name + ".reason").write_text(reason + "\n")


def _recording_files(path: Path) -> list[Path]:
    """``path`` and the files of the same SigMF recording beside it (a refused recording's
    metadata and data go to rejected/ together)."""
    for suffix in RECORDING_SUFFIXES:
        if path.name.endswith(suffix):
            base = path.name[: -len(suffix)]
            return [p for s in RECORDING_SUFFIXES if (p := path.with_name(base + s)).exists()]
    return [path]


def _missing_streams(collection: Path) -> bool:
    try:
        streams = json.loads(collection.read_text())["collection"]["core:streams"]
        bases = [collection.parent / str(s["name"]) for s in streams]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(sigmf.recording_file(b) is None for b in bases)


def _unknown(path: Path) -> IngestError:
    return IngestError(
        str(path),
        "not a recording Heimdall reads (.sigmf-collection with its recordings, or KiwiSDR "
        "*_iq.wav)",
    )


def _unique(path: Path) -> Path:
    """``path``, or ``path`` with ``.1``, ``.2``… inserted when it exists."""
    candidate, n = path, 0
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.{n}")
    return candidate


def _move(path: Path, directory: Path) -> Path:
    target = _unique(directory / path.name)
    shutil.move(str(path), str(target))
    return target
