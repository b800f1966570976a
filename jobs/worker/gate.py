"""A cluster fetches a task only when one of its workers is free to start it.

django-q2's pusher takes tasks from the broker as soon as its local queue has
room, and puts one more in its own hand while the queue is full: a cluster
whose only worker is busy still held a job's helper task, which the ORM
broker then hides from every other cluster for its whole lease. Measured:
two single-worker clusters never encoded a 2-video job's videos at once
(docs/architecture/queue-and-database.md, "Queue").

GatedBroker wraps the configured broker (ORM or Redis) and lets the pusher
dequeue only while the cluster has more idle workers than tasks fetched and
not yet started. The workers say when they are idle or busy through
django-q2's signals, into memory shared by the whole `qcluster` process tree:
it is made when this module is imported, in the cluster's main process
(Cluster() builds its broker there), before the sentinel forks the pusher and
the workers. A worker that dies, busy or idle, stops counting (its pid is
checked); its replacement announces itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time

import psutil
from django_q.brokers import Broker
from django_q.conf import Conf
from django_q.signals import post_execute_in_worker, post_spawn, pre_execute
from django_q.signing import BadSignature, SignedPackage

logger = logging.getLogger(__name__)

SLOTS = 256  # worker pids a cluster may have had alive at once, replacements included
IDLE, BUSY = 1, 2
WAIT_SECONDS = 1.0  # the pusher checks its stop event between waits
CHECK_SECONDS = 0.02

# (pid, state) pairs and the count of tasks the cluster's workers started: shared by fork.
_workers = multiprocessing.Array("q", 2 * SLOTS)
_started = multiprocessing.Value("q", 0)


def _alive(pid: int) -> bool:
    """Running, and not a zombie (a worker that ended, e.g. after a timeout, before its sentinel reaped it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _mark(state: int, started: bool = False) -> None:
    """This worker process is now idle or busy."""
    pid = os.getpid()
    with _workers.get_lock():
        slots = [(_workers[2 * i], i) for i in range(SLOTS)]
        mine = next((i for owner, i in slots if owner == pid), None)
        if mine is None:
            mine = next((i for owner, i in slots if owner == 0 or not _alive(owner)), None)
        if mine is None:  # more workers than slots: this one is not counted (the gate stays open for it)
            return
        _workers[2 * mine], _workers[2 * mine + 1] = pid, state
    if started:
        with _started.get_lock():
            _started.value += 1


def idle_workers() -> int:
    """Live workers of this cluster waiting for a task."""
    with _workers.get_lock():
        pairs = [(_workers[2 * i], _workers[2 * i + 1]) for i in range(SLOTS)]
    return sum(1 for pid, state in pairs if pid and state == IDLE and _alive(pid))


def _on_spawn(sender, proc_name=None, **kwargs) -> None:
    _mark(IDLE)


def _on_start(sender, **kwargs) -> None:
    _mark(BUSY, started=True)


def _on_end(sender, **kwargs) -> None:
    _mark(IDLE)


post_spawn.connect(_on_spawn, dispatch_uid="videojobs-gate-spawn")
pre_execute.connect(_on_start, dispatch_uid="videojobs-gate-start")
post_execute_in_worker.connect(_on_end, dispatch_uid="videojobs-gate-end")


def _unpacks(payload) -> bool:
    """Will the pusher hand this task to a worker? It drops one whose signature fails (a rotated SECRET_KEY):
    such a task must not count as waiting for a worker, or the gate would wait for it for ever."""
    try:
        SignedPackage.loads(payload)
    except (TypeError, BadSignature):
        return False
    return True


def _inner_broker(list_key: str) -> Broker:
    """The broker the settings choose (Redis with REDIS_URL, else the ORM)."""
    if Conf.REDIS:
        from django_q.brokers.redis_broker import Redis

        return Redis(list_key=list_key)
    from django_q.brokers.orm import ORM

    return ORM(list_key=list_key)


class GatedBroker:
    """The configured broker, whose dequeue waits for a free worker of this cluster (Q_CLUSTER's broker_class)."""

    def __init__(self, list_key: str = Conf.CLUSTER_NAME):
        self._inner = _inner_broker(list_key)
        self._fetched = 0  # by this pusher process (a copy per process: only the pusher's counts)
        self._started_before: int | None = None  # the cluster's started count when this pusher began

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def dequeue(self):
        deadline = time.monotonic() + WAIT_SECONDS
        while not self._free_worker():
            if time.monotonic() >= deadline:
                return None  # the pusher looks at its stop event, then asks again
            time.sleep(CHECK_SECONDS)
        tasks = self._inner.dequeue()
        self._fetched += sum(1 for _ack, payload in tasks or () if _unpacks(payload))
        return tasks

    def _free_worker(self) -> bool:
        started = _started.value
        if self._started_before is None:
            self._started_before = started
        waiting = max(self._fetched - (started - self._started_before), 0)  # fetched, not yet started
        return idle_workers() > waiting
