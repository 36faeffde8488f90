"""The chaos run: prove that every accepted job ends in exactly one published result.

A private redis-server with an AOF fsynced on every write, real ``heimdall worker`` nodes, and
an *outside* producer — plain redis-py pushing the raw Celery message the README documents,
IQ inline, the way a client in another language would — while the run SIGKILLs prefork
children (most of them mid-job), SIGKILLs one node's main process, stops one node warmly
(SIGTERM), and kills redis-server with -9 and restarts it. Then the audit: per accepted job id,
its result in the Celery backend, its entries in the durable stream and the messages heard on
pub/sub; lost and duplicated ones are counted, never hidden.

Pub/sub is at-most-once by contract: a result published while the listener is reconnecting
after the Redis restart is missed, and counted as such (not as lost).
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import redis

from heimdall.broker.envelope import job_message, pack_message
from heimdall.client import ResultListener
from heimdall.config import Settings
from heimdall.harness.console import Progress, format_table
from heimdall.harness.fleet import LocalFleet
from heimdall.harness.node import WorkerProcess
from heimdall.sim import ScenarioGenerator, SimConfig


@dataclass
class ChaosPlan:
    """What the run does; times in seconds."""

    jobs: int = 1000
    rate_per_s: float = 8.0
    nodes: int = 2
    concurrency: int = 1
    kill_child_every_s: float = 3.0
    kill_main: bool = True
    warm_shutdown: bool = True
    restart_redis: bool = True
    large_fraction: float = 0.1  # jobs of 50 000 samples per receiver: long enough to hit
    seed: int = 20261127
    soft_time_limit_s: float = 8.0
    hard_time_limit_s: float = 12.0
    visibility_timeout_s: float = 20.0
    settle_timeout_s: float = 120.0  # after the last submission, for every result to appear


@dataclass
class Audit:
    accepted: int = 0
    in_backend: int = 0
    in_stream: int = 0
    heard_on_pubsub: int = 0
    lost: list[str] = field(default_factory=list)
    whereabouts: dict[str, str] = field(default_factory=dict)  # lost job id → what Redis holds
    events: list[tuple[float, str]] = field(default_factory=list)  # (s since start, what)
    stream_duplicates: int = 0
    pubsub_duplicates: int = 0
    backend_stream_mismatch: int = 0
    statuses: Counter = field(default_factory=Counter)
    taken_more_than_once: int = 0
    children_killed: int = 0
    children_killed_mid_job: int = 0
    main_processes_killed: int = 0
    warm_shutdowns: int = 0
    redis_restarts: int = 0
    dead_letters: int = 0
    recovery_s: list[float] = field(default_factory=list)  # mid-job kill → result published
    elapsed_s: float = 0.0
    log_dir: str = ""

    @property
    def passed(self) -> bool:
        return (
            not self.lost
            and self.stream_duplicates == 0
            and self.pubsub_duplicates == 0
            and self.backend_stream_mismatch == 0
            and self.in_backend == self.accepted == self.in_stream
        )

    def table(self) -> str:
        recovery = sorted(self.recovery_s)
        rows = [
            ["jobs accepted (LPUSH succeeded)", self.accepted],
            ["results in the Celery backend", self.in_backend],
            ["job ids in the stream", self.in_stream],
            ["job ids heard on pub/sub", self.heard_on_pubsub],
            ["LOST (no result in backend or stream)", len(self.lost)],
            ["stream duplicates", self.stream_duplicates],
            ["pub/sub duplicates", self.pubsub_duplicates],
            ["backend ≠ stream", self.backend_stream_mismatch],
            ["results ok / failed", f"{self.statuses['ok']} / {self.statuses['failed']}"],
            ["failed by code", ", ".join(f"{k}={v}" for k, v in self._codes()) or "-"],
            ["jobs taken by more than one child", self.taken_more_than_once],
            [
                "children SIGKILLed (mid-job)",
                f"{self.children_killed} ({self.children_killed_mid_job})",
            ],
            ["main processes SIGKILLed", self.main_processes_killed],
            ["warm shutdowns (SIGTERM)", self.warm_shutdowns],
            ["redis-server kill -9 + restart", self.redis_restarts],
            ["dead letters", self.dead_letters],
            [
                "mid-job kill → result, median / max s",
                f"{recovery[len(recovery) // 2]:.1f} / {recovery[-1]:.1f}" if recovery else "-",
            ],
            ["elapsed s", f"{self.elapsed_s:.0f}"],
            ["verdict", "PASS" if self.passed else "FAIL"],
        ]
        return format_table(["audit", "value"], rows)

    def _codes(self) -> list[tuple[str, int]]:
        return sorted((k[7:], v) for k, v in self.statuses.items() if k.startswith("failed:"))


PACK_JOBS = 6  # chaos sends a third of its jobs as packs of this many
ORIGIN = "chaos-producer"


def make_jobs(plan: ChaosPlan) -> list[dict]:
    """Simulated jobs as plain dicts (ci16 IQ inline), some of them long."""
    rng = random.Random(plan.seed)
    small = ScenarioGenerator(SimConfig(network="reference", num_samples=5_000), plan.seed)
    large = ScenarioGenerator(SimConfig(network="reference", num_samples=50_000), plan.seed + 1)
    jobs = []
    progress = Progress(plan.jobs, "simulate")
    for i in range(plan.jobs):
        gen = large if rng.random() < plan.large_fraction else small
        job = gen.next().to_job("ci16_le", job_id=str(uuid.uuid4()))
        jobs.append(json.loads(job.to_json()))
        progress.update(i + 1)
    return jobs


class ChaosRun:
    def __init__(self, plan: ChaosPlan, log_dir: Path | None = None) -> None:
        self.plan = plan
        self.rng = random.Random(plan.seed)
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="heimdall-chaos-"))
        self.audit = Audit(log_dir=str(self.log_dir))
        self.kill_times: dict[str, float] = {}  # job id → when (time.time()) its child was killed
        self.pushed_at: dict[str, float] = {}
        self.started = time.monotonic()

    def run(self) -> Audit:
        started = time.monotonic()
        jobs = make_jobs(self.plan)
        settings = Settings(
            key_prefix="chaos",
            soft_time_limit_s=self.plan.soft_time_limit_s,
            hard_time_limit_s=self.plan.hard_time_limit_s,
            visibility_timeout_s=self.plan.visibility_timeout_s,
            metrics_port=None,
        )
        with LocalFleet(settings, "private", self.log_dir, appendonly=True) as fleet:
            self.fleet, self.settings = fleet, fleet.settings
            self.redis = redis.Redis.from_url(fleet.settings.redis_url)
            with fleet.listener() as listener:  # reconnects at once after the Redis restart
                for _ in range(self.plan.nodes):
                    self._start_node()
                accepted = self._submit_with_chaos(jobs)
                self._settle(accepted)
                self._audit(accepted, listener)
            fleet.stop_nodes(timeout_s=30)
        self.audit.elapsed_s = time.monotonic() - started
        return self.audit

    # -- the fleet ---------------------------------------------------------------------------

    def _start_node(self) -> WorkerProcess:
        n = len(self.fleet.nodes)
        return self.fleet.start_node(self.plan.concurrency, f"chaos{n}@%h", ready_timeout_s=120)

    def _live_nodes(self) -> list[WorkerProcess]:
        return self.fleet.live_nodes()

    # -- producing under chaos ---------------------------------------------------------------

    def _submit_with_chaos(self, jobs: list[dict]) -> list[str]:
        """Push every job at ``rate_per_s`` while a second thread does the chaos."""
        queue = self.settings.queue("interactive")
        queue_key = f"{self.settings.key_prefix}:{queue}"  # kombu's global_keyprefix
        accepted: list[str] = []
        done = threading.Event()
        chaos = threading.Thread(
            target=self._chaos, args=(accepted, len(jobs), done), name="chaos", daemon=True
        )
        chaos.start()
        bulk = self.settings.queue("bulk")
        bulk_key = f"{self.settings.key_prefix}:{bulk}"
        progress = Progress(len(jobs), "chaos submit")
        next_at = time.monotonic()
        for start in range(0, len(jobs), PACK_JOBS):
            group = jobs[start : start + PACK_JOBS]
            if (start // PACK_JOBS) % 3 == 2:  # every third group as one pack of bulk jobs
                self._push(bulk_key, pack_message(group, bulk, ORIGIN))
            else:
                for job in group:
                    self._push(queue_key, job_message(job, queue, ORIGIN))
            for job in group:
                accepted.append(job["job_id"])
                self.pushed_at[job["job_id"]] = time.monotonic() - self.started
            progress.update(len(accepted))
            next_at += len(group) / self.plan.rate_per_s
            time.sleep(max(0.0, next_at - time.monotonic()))
        done.set()
        chaos.join()
        return accepted

    def _chaos(self, accepted: list[str], total: int, done: threading.Event) -> None:
        """Kill a child every ``kill_child_every_s``; at 1/4, 1/2 and 3/4 of the jobs, kill a
        main process, stop a node warmly and restart Redis."""
        milestones = [
            (total // 4, self._kill_main if self.plan.kill_main else None),
            (total // 2, self._warm_shutdown if self.plan.warm_shutdown else None),
            ((3 * total) // 4, self._restart_redis if self.plan.restart_redis else None),
        ]
        next_kill = time.monotonic() + self.plan.kill_child_every_s
        while not done.is_set():
            while milestones and len(accepted) >= milestones[0][0]:
                action = milestones.pop(0)[1]
                if action is not None:
                    action()
            if time.monotonic() >= next_kill:
                self._kill_child()
                next_kill = time.monotonic() + self.plan.kill_child_every_s
            time.sleep(0.01)

    def _push(self, key: str, message: str) -> None:
        """LPUSH until Redis takes it (an outside producer retries through a restart)."""
        while True:
            try:
                self.redis.lpush(key, message)
                return
            except (redis.ConnectionError, redis.TimeoutError):
                time.sleep(0.1)

    # -- the chaos ---------------------------------------------------------------------------

    def _kill_child(self) -> None:
        """SIGKILL a child, preferring one that holds a job (waits up to 2 s for one)."""
        deadline = time.monotonic() + 2.0
        while True:
            busy = self._busy_children()
            if busy or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        children = [pid for node in self._live_nodes() for pid in node.child_pids()]
        if busy:
            pid, job_id = self.rng.choice(sorted(busy.items()))
        elif children:
            pid, job_id = self.rng.choice(children), None
        else:
            return
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.audit.children_killed += 1
        if job_id is not None:
            self.audit.children_killed_mid_job += 1
            self.kill_times.setdefault(job_id, time.time())

    def _busy_children(self) -> dict[int, str]:
        """pid → job id of children holding a claim right now."""
        try:
            keys = list(self.redis.scan_iter(match=f"{self.settings.key_prefix}:job:*:claim"))
            holders = self.redis.mget(keys) if keys else []
        except redis.RedisError:
            return {}
        own = {pid for node in self._live_nodes() for pid in node.child_pids()}
        busy = {}
        for key, holder in zip(keys, holders, strict=True):
            if holder is None:
                continue
            pid = int(holder.decode().rsplit(":", 1)[1])
            if pid in own:
                busy[pid] = key.decode().split(":")[-2]
        return busy

    def _kill_main(self) -> None:
        live = self._live_nodes()
        if not live:
            return
        victim = self.rng.choice(live)
        victim.process.kill()  # its children notice and exit; its messages come back later
        self._event(f"SIGKILL main of {victim.node_name}")
        victim.process.wait()
        self.audit.main_processes_killed += 1
        self._start_node()

    def _warm_shutdown(self) -> None:
        live = self._live_nodes()
        if not live:
            return
        victim = self.rng.choice(live)
        self._event(f"SIGTERM {victim.node_name}")
        victim.stop(timeout_s=60)
        self._event(f"{victim.node_name} stopped")
        self.audit.warm_shutdowns += 1
        self._start_node()

    def _restart_redis(self) -> None:
        self.fleet.server.kill()
        self._event("redis-server killed")
        time.sleep(1.0)
        self.fleet.server.restart()
        self._event("redis-server restarted")
        self.audit.redis_restarts += 1

    def _event(self, what: str) -> None:
        self.audit.events.append((round(time.monotonic() - self.started, 3), what))

    # -- the audit ---------------------------------------------------------------------------

    def _stream_counts(self) -> tuple[Counter, dict[str, dict]]:
        counts: Counter = Counter()
        bodies: dict[str, dict] = {}
        for _, fields in self.redis.xrange(self.settings.results_stream):
            if b"job_id" not in fields:  # a batch summary
                continue
            job_id = fields[b"job_id"].decode()
            counts[job_id] += 1
            bodies[job_id] = json.loads(fields[b"result"])
        return counts, bodies

    def _settle(self, accepted: list[str]) -> None:
        wanted = set(accepted)
        deadline = time.monotonic() + self.plan.settle_timeout_s
        progress = Progress(len(wanted), "chaos results")
        while time.monotonic() < deadline:
            try:
                counts, _ = self._stream_counts()
            except redis.RedisError:
                time.sleep(0.5)
                continue
            done = len(wanted & set(counts))
            progress.update(done)
            if done == len(wanted):
                time.sleep(2.0)  # let late duplicates, if any, show up before the audit
                return
            time.sleep(0.5)

    def _audit(self, accepted: list[str], listener: ResultListener) -> None:
        a = self.audit
        a.accepted = len(accepted)
        counts, streamed = self._stream_counts()
        time.sleep(0.5)
        prefix = self.settings.key_prefix
        metas = self.redis.mget([f"{prefix}:celery-task-meta-{j}" for j in accepted])
        attempts = self.redis.mget([self.settings.job_key(j, "attempts") for j in accepted])
        for job_id, meta, taken in zip(accepted, metas, attempts, strict=True):
            stored = json.loads(meta)["result"] if meta else None
            a.in_backend += stored is not None
            a.in_stream += job_id in counts
            a.heard_on_pubsub += job_id in listener.heard
            a.stream_duplicates += max(0, counts[job_id] - 1)
            a.pubsub_duplicates += max(0, listener.heard[job_id] - 1)
            a.taken_more_than_once += int(taken or 0) > 1
            if stored is None or job_id not in counts:
                a.lost.append(job_id)
                continue
            if stored.get("status") != streamed[job_id].get("status"):
                a.backend_stream_mismatch += 1
            status = stored["status"]
            a.statuses[status] += 1
            if status == "failed":
                a.statuses[f"failed:{stored['error']['code']}"] += 1
        for job_id, killed_at in self.kill_times.items():
            if job_id in listener.received:
                a.recovery_s.append(max(0.0, listener.received[job_id][0] - killed_at))
        a.dead_letters = int(self.redis.llen(self.settings.dead_letters_key))
        for job_id in a.lost:
            pushed = self.pushed_at.get(job_id, float("nan"))
            a.whereabouts[job_id] = f"pushed at {pushed:.3f} s; {self._whereabouts(job_id)}"

    def _whereabouts(self, job_id: str) -> str:
        """Where a lost job still is in Redis: queues, kombu's unacked hash, its bookkeeping."""
        prefix = self.settings.key_prefix
        found = []
        for key in self.redis.scan_iter(match=f"{prefix}:{prefix}.jobs.*"):
            if any(job_id.encode() in item for item in self.redis.lrange(key, 0, -1)):
                found.append(f"queued in {key.decode()}")
        for tag, item in self.redis.hgetall(f"{prefix}:unacked").items():
            if job_id.encode() in item:
                score = self.redis.zscore(f"{prefix}:unacked_index", tag)
                found.append(f"unacked since {score}")
        for what in ("claim", "attempts", "published"):
            value = self.redis.get(self.settings.job_key(job_id, what))
            if value is not None:
                found.append(f"{what}={value.decode()}")
        return "; ".join(found) or "nowhere"
