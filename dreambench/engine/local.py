"""Local backend: a pool of worker processes, one (or ``jobs_per_gpu``) per visible GPU, or CPU workers.

Each worker is a ``multiprocessing`` *spawn* process with its own ``CUDA_VISIBLE_DEVICES``; it loads the
base model once and keeps it between jobs (see :mod:`dreambench.engine.worker`). The driver gives each
worker one job at a time through the worker's own pipe, so it always knows which worker runs which job;
the result comes back on the same pipe. Pipes, not ``multiprocessing.Queue``: a queue's locks are named
semaphores, which a worker killed mid-job (Ctrl-C, SIGKILL after a slow SIGTERM) can leave held (another
worker then blocks on the shared queue) or leave for the resource tracker to report as "leaked" on stderr.
A worker that dies (out of memory, segfault) fails its job and is replaced. Workers exit when the driver
is gone: Linux kills them the moment it dies (:func:`die_with_parent`), and between jobs they also poll
their parent's pid. Workers ignore SIGINT (:func:`sigint_deferred`, :func:`_worker_main`): on Ctrl-C the
driver stops them (:meth:`LocalBackend.kill`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_any

from tqdm import tqdm

from .worker import Worker, WorkerContext


@dataclass
class Slot:
    """One worker: its name, the GPU it sees (None on CPU) and its torch thread count."""

    name: str
    gpu: str | None
    threads: int | None


def usable_cores() -> int:
    """Cores this process may run on: its CPU affinity (taskset, cgroup cpusets), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def cpu_threads(cores: int, workers: int, threads: int | None = None) -> int:
    """Torch intra-op threads of each of ``workers`` CPU workers on ``cores`` cores: ``threads`` if given,
    else the cores split evenly between the workers, at least 1.

    One worker gets every core: the driver only waits on its workers' pipes while they work. (Cores minus one gave a
    single worker one thread on a 2-core machine, and the same small SD job took 83 s instead of 50 s.)
    Workers together never get more threads than cores: intra-op threads that compete for a busy core spin
    at every barrier, which costs far more than the extra thread gains."""
    if threads:
        return max(1, int(threads))
    return max(1, cores // max(1, workers))


def cpu_threads_choice(workers: int, threads: int | None = None, cores: int | None = None) -> tuple[int, str]:
    """``(threads per worker, one log line saying why)``; the one rule ``run``, ``train``, ``generate`` and
    ``bench`` use for CPU workers."""
    cores = cores or usable_cores()
    n = cpu_threads(cores, workers, threads)
    why = "--threads" if threads else f"default: {cores} core(s) split between {max(1, workers)} worker(s)"
    return n, f"cpu: {max(1, workers)} worker(s) x {n} torch thread(s) ({why})"


def log_line(line: str) -> None:
    """A note for the person at the terminal (stderr, so that stdout stays the command's result)."""
    print(line, file=sys.stderr, flush=True)


def plan_slots(device: str, gpus: list[int] | None, jobs_per_gpu: int, cpu_count: int | None = None,
               threads: int | None = None, log: Callable[[str], None] | None = None) -> list[Slot]:
    """Worker slots: ``jobs_per_gpu`` per listed GPU on CUDA, else ``jobs_per_gpu`` CPU workers with
    :func:`cpu_threads` threads each (the choice goes to ``log``)."""
    jobs_per_gpu = max(1, int(jobs_per_gpu))
    if device.startswith("cuda"):
        return [Slot(f"gpu{g}-{k}", str(g), None) for g in (gpus or [0]) for k in range(jobs_per_gpu)]
    n, line = cpu_threads_choice(jobs_per_gpu, threads, cpu_count)
    if log is not None:
        log(line)
    return [Slot(f"cpu-{k}", None, n) for k in range(jobs_per_gpu)]


#: Linux ``prctl`` option: the signal a process gets when its parent dies (``<linux/prctl.h>``).
PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int, sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process the moment its parent dies (``prctl(PR_SET_PDEATHSIG)``),
    so a worker never outlives a driver killed with ``kill -9`` (it would keep training, and a resumed
    driver would run the same job beside it). Exits at once when ``parent`` is already gone. Returns
    False where prctl is unavailable (not Linux); the pid poll of :func:`_worker_main` then covers it."""
    ok = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
        except (OSError, AttributeError):
            ok = False
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    return ok


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Start workers in this block so that they do not see SIGINT: the calling thread blocks SIGINT, which
    a spawned process inherits where the kernel keeps the mask across fork and exec (not everywhere: the
    worker also ignores SIGINT as its first step, :func:`_worker_main`). Ctrl-C at a terminal goes to the
    whole process group; the driver alone handles it, stops the workers (:meth:`LocalBackend.kill`) and
    records the run as interrupted, so no worker prints a ``KeyboardInterrupt`` traceback or finishes a
    job nobody will record. The driver's own Ctrl-C in the
    block is not lost (another thread of the driver may be the one the kernel delivers it to): it is
    recorded and raised as ``KeyboardInterrupt`` when the block ends. Outside the main thread (where
    signal handlers cannot be set) the block changes nothing."""
    got: list[int] = []
    try:
        old = signal.signal(signal.SIGINT, lambda signum, _frame: got.append(signum))
    except ValueError:  # not the main thread
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)  # a Ctrl-C pending on this thread lands in `got`
        signal.signal(signal.SIGINT, old)
    if got:
        raise KeyboardInterrupt


def _exit_on_sigterm(signum: int, _frame: object) -> None:
    # SystemExit unwinds the job (its temporary files are removed) and runs the exit hooks, which release
    # the process's named semaphores (tqdm's lock): SIGTERM's default action would leak them.
    raise SystemExit(128 + signum)


def _worker_main(slot: dict, ctx: dict, conn: Connection, parent: int) -> None:
    # Ctrl-C reaches the whole process group; the driver alone handles it (it stops this worker). The
    # driver's blocked SIGINT is not inherited everywhere (on some kernels and sandboxes a spawned process
    # starts with an empty signal mask), so the worker ignores SIGINT itself, first of all.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    # A worker's progress bars need no cross-process lock. tqdm's default one is a named semaphore, which a
    # worker killed mid-job (Ctrl-C, SIGKILL after a slow SIGTERM) leaves for the driver's resource tracker
    # to report as "leaked" on stderr.
    tqdm.set_lock(threading.RLock())
    if slot["gpu"] is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = slot["gpu"]  # before anything touches CUDA
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    worker = Worker(WorkerContext(**{**ctx, "threads": slot["threads"]}), slot["name"])
    while True:
        try:
            if not conn.poll(1.0):
                if os.getppid() != parent:  # the driver is gone (killed): do not linger
                    return
                continue
            job = conn.recv()
        except (EOFError, OSError):  # the driver closed its end or died
            return
        if job is None:
            return
        conn.send(worker.run(job))


class LocalBackend:
    """Worker processes on this machine. ``submit`` a job to a free slot, ``wait`` for finished ones."""

    name = "local"

    def __init__(self, ctx: WorkerContext, slots: list[Slot]):
        self.ctx = ctx
        self.slots = slots
        self._mp = mp.get_context("spawn")
        self._procs: dict[str, mp.Process] = {}
        self._conns: dict[str, Connection] = {}
        self._busy: dict[str, dict] = {}

    def _start(self, slot: Slot) -> None:
        ours, theirs = self._mp.Pipe(duplex=True)
        proc = self._mp.Process(target=_worker_main, name=f"dreambench-{slot.name}", daemon=False,
                                args=(asdict(slot), asdict(self.ctx), theirs, os.getpid()))
        with sigint_deferred():
            proc.start()
        theirs.close()  # the worker holds its end: a dead worker then reads as end-of-file here
        self._procs[slot.name], self._conns[slot.name] = proc, ours

    def start(self) -> None:
        for slot in self.slots:
            self._start(slot)

    def free_slots(self) -> list[str]:
        return [s.name for s in self.slots if s.name not in self._busy]

    def describe(self, slot: str) -> str:
        s = next(x for x in self.slots if x.name == slot)
        return f"cuda:{s.gpu}" if s.gpu is not None else "cpu"

    def submit(self, slot: str, job: dict) -> None:
        self._busy[slot] = job
        self._conns[slot].send(job)

    def wait(self, timeout: float = 1.0) -> list[dict]:
        """Results that arrived within ``timeout`` seconds, plus failures of workers that died."""
        out = []
        by_conn = {id(c): name for name, c in self._conns.items() if name in self._busy}
        ready = wait_any([self._conns[n] for n in by_conn.values()], timeout) if by_conn else []
        if not by_conn:
            time.sleep(timeout)
        for conn in ready:
            name = by_conn[id(conn)]
            try:
                res = conn.recv()
            except (EOFError, OSError):  # the worker died: let it finish exiting, then report it below
                self._procs[name].join(timeout=1)
                continue
            out.append(res)
            self._busy.pop(name, None)
        for name, job in list(self._busy.items()):
            proc = self._procs[name]
            if not proc.is_alive():
                out.append({"id": job["id"], "ok": False, "worker": name, "device": self.describe(name),
                            "error": f"worker process died (exit code {proc.exitcode})", "seconds": None,
                            "artifacts": {}, "images": 0})
                del self._busy[name]
                self._conns.pop(name).close()
                self._start(next(s for s in self.slots if s.name == name))
        return out

    def kill(self) -> None:
        """Stop every worker now (SIGTERM, then SIGKILL), mid-job or not: the driver was interrupted. A job
        cut short leaves only temporary files, which the next run removes."""
        for proc in self._procs.values():
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs.values():
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)

    def close(self) -> None:
        for conn in self._conns.values():
            try:
                conn.send(None)
            except (OSError, ValueError):  # the worker is gone
                pass
        for proc in self._procs.values():
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
