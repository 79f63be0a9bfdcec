"""Drive a batch run: plan the tasks, skip what is done, run the rest on dask.distributed.

The client is the only writer of the state database. Each association member is one task
(:func:`calpipe.batch.tasks.calibrate_member`); once every member of an association's
product has settled, the product's tweakreg fit is one more task
(:func:`calpipe.batch.tasks.fit_association`) over the entries of the members that
succeeded, and then each of those members is aligned by its fit result and written by a
task of its own (:func:`calpipe.batch.tasks.apply_alignment`). Every kind reserves memory
and climbs the same ladder when it runs out of it.
"""

import contextlib
import fcntl
import functools
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from calpipe.associations.asn import AsnError, load_asn
from calpipe.errors import CalpipeError

from . import tasks
from .memory import apply_memory_mb, estimate_memory_mb, fit_memory_mb, next_reservation
from .state import StateDB, file_record, fingerprint, sha256_of

log = logging.getLogger(__name__)

STAGING = ".calpipe-batch"
MEMORY = "MEMORY"  # the Dask worker resource tasks reserve, in MB


@dataclass
class Options:
    inputs: list
    output_dir: str
    workers: int | None = None
    scheduler: str | None = None
    memory_limit: str | None = None
    ref_store: str | None = None
    pipeline: str = "exposure_pipeline"
    config: str | None = None
    overrides: dict = field(default_factory=dict)   # {step: {param: value}}
    retries: int = 3
    force: bool = False
    ingest: str | None = None
    archive: str | None = None      # archive folder: each finished association's products go there
    processes: bool = True          # local workers as processes (threads for quick tests)
    progress: bool | None = None    # a progress bar; default: when stderr is a terminal


@dataclass
class Member:
    key: str
    path: Path
    meta: dict = field(default_factory=dict)

    @functools.cached_property
    def root(self):
        return tasks.root_of(self.path)


@dataclass
class Group:
    """One product of an association: its members are aligned together."""
    key: str
    asn_path: Path
    name: str
    members: list

    def apply_key(self, member):
        """The key of the task that aligns ``member`` by this product's fit."""
        return f"apply:{self.asn_path}#{self.name}#{member.root}"


class BatchError(CalpipeError):
    """A batch run that cannot start as asked (usage error)."""


# -- planning -------------------------------------------------------------------------------
def find_associations(inputs):
    """Association files named or found (``*_asn.json``) in the folders named."""
    found = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(path.glob("*_asn.json"))
        elif path.is_file():
            found.append(path)
        else:
            raise BatchError(f"{item}: no such association file or folder")
    if not found:
        raise BatchError(f"no association files (*_asn.json) in {', '.join(map(str, inputs))}")
    return [p.resolve() for p in dict.fromkeys(found)]


def plan(asn_paths):
    """Groups to align and the association files that could not be read (path, error)."""
    groups, bad = [], []
    members = {}
    for asn_path in asn_paths:
        try:
            asn = load_asn(asn_path)
        except AsnError as err:
            bad.append((asn_path, str(err)))
            continue
        for product in asn["products"]:
            group_members = []
            for m in product["members"]:
                path = (asn_path.parent / m["expname"]).resolve()
                key = f"member:{path}"
                members.setdefault(key, Member(key, path))
                group_members.append(members[key])
            groups.append(Group(f"align:{asn_path}#{product['name']}", asn_path, product["name"], group_members))
    return groups, bad


def resolve_pipeline(options):
    """(class path, parameters, parameters fingerprint) of the pipeline the tasks run."""
    from stpipe import entry_points

    from calpipe.pipelines import ExposurePipeline

    # Aliases as strun knows them (the stpipe.steps entry points), else a class path.
    class_path = next((s.class_name for s in entry_points.get_steps() if s.class_alias == options.pipeline),
                      options.pipeline)
    try:
        cls = tasks.pipeline_class(class_path)
    except (ImportError, AttributeError, ValueError):
        raise BatchError(f"--pipeline {options.pipeline}: unknown pipeline, expected an alias "
                         "such as exposure_pipeline or a class path") from None
    if not (isinstance(cls, type) and issubclass(cls, ExposurePipeline)):
        raise BatchError(f"--pipeline {options.pipeline}: not an exposure pipeline "
                         "(batch runs need its per-exposure calibration and tweakreg)")
    kwargs = {"steps": options.overrides}
    if options.config:
        if not os.path.isfile(options.config):
            raise BatchError(f"--config {options.config}: no such parameter file")
        kwargs["config_file"] = options.config
    ref_store = options.ref_store or os.environ.get("CALPIPE_REFS")
    if not ref_store or not os.path.isdir(ref_store):
        raise BatchError(f"reference store {ref_store or '(none)'} not found, expected --ref-store "
                         "DIR or CALPIPE_REFS naming a folder")
    kwargs["ref_store"] = str(Path(ref_store).resolve())
    try:
        config, config_file = cls.build_config(None, **kwargs)
        pipeline = cls.from_config_section(config, config_file=config_file)
    except Exception as err:  # configobj and stpipe raise many kinds for bad parameters
        raise BatchError(f"bad parameters ({_one_line(err)})") from None
    pars = pipeline.get_pars()
    for volatile in ("output_dir", "input_dir", "save_results", "output_use_model"):
        pars.pop(volatile, None)
    index = Path(kwargs["ref_store"]) / "index.json"
    store_sum = sha256_of(index) if index.exists() else None
    cls_path = f"{cls.__module__}.{cls.__name__}"
    return cls_path, pars, fingerprint(cls_path, pars, store_sum)


def _one_line(err):
    if isinstance(err, CalpipeError):
        return str(err)
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def _exposure_size(path):
    """(meta, npixels, nresultants) of a raw exposure from its header, without reading the data."""
    import asdf

    try:
        with asdf.open(path, lazy_load=True, memmap=False) as af:
            meta = dict(af.tree.get("meta") or {})
            shape = tuple(af.tree["data"].shape)
        return meta, shape[-1] * shape[-2], shape[0]
    except Exception:
        # Unreadable: the task will say why; reserve as for a file of that size.
        return {}, max(os.path.getsize(path) // 12, 1), 6


# -- the cluster ----------------------------------------------------------------------------
def _bytes(text):
    from dask.utils import parse_bytes

    try:
        return parse_bytes(text)
    except (ValueError, TypeError):
        raise BatchError(f"--memory-limit {text}: not a size, expected e.g. 4GB or 4000MB") from None


# Local worker processes are forked from a server that has imported these once.
WORKER_PRELOAD = ["distributed", "calpipe.batch.warm"]


def _preload_fork_server():
    from distributed.utils import get_mp_context

    get_mp_context().set_forkserver_preload(WORKER_PRELOAD)  # after Dask has set its own list


def start_client(options):
    """(client, cluster or None, threads per task or None, largest worker MEMORY or None)."""
    import dask
    from distributed import Client, LocalCluster

    if options.scheduler and options.scheduler != "local":
        try:
            client = Client(options.scheduler, timeout="20s")
        except OSError as err:
            raise BatchError(f"--scheduler {options.scheduler}: cannot connect ({_one_line(err)})") from None
        client.wait_for_workers(1, timeout=60)
        capacities = [w.get("resources", {}).get(MEMORY) for w in client.scheduler_info()["workers"].values()]
        capacities = [c for c in capacities if c]
        if not capacities:
            log.warning("no worker advertises a %s resource: tasks run without memory reservations", MEMORY)
        return client, None, None, (max(capacities) if capacities else None)
    cores = os.cpu_count() or 1
    workers = options.workers or cores
    if options.memory_limit:
        limit = _bytes(options.memory_limit)
    else:
        from distributed.system import MEMORY_LIMIT

        limit = MEMORY_LIMIT // workers
    limit_mb = limit / 2**20
    # A worker lost mid-task is reported at once, so the client can retry higher up the ladder.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                          "distributed.worker.multiprocessing-method": "forkserver"}):
        if options.processes:
            _preload_fork_server()
        # Threads of this process cannot be restarted by a nanny: no memory limit to enforce there.
        loopback = {"host": "127.0.0.1"} if options.processes else {}  # threads talk in-process
        # Forked workers have the environment the fork server started with: calpipe's variables
        # (the reference store, the test hooks) are passed as they are now.
        env = {"env": {k: v for k, v in os.environ.items() if k.startswith("CALPIPE_")}} if options.processes else {}
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=options.processes,
                               dashboard_address=None, **loopback, **env,
                               memory_limit=limit if options.processes else 0,
                               resources={MEMORY: limit_mb})
    client = Client(cluster)
    return client, cluster, (max(1, cores // workers) if options.processes else None), limit_mb


# -- progress -------------------------------------------------------------------------------
class Progress:
    """A bar on a terminal (done, failed, running, ETA); plain lines otherwise."""

    def __init__(self, total, bar=None, stream=None):
        self.total, self.done, self.failed = total, 0, 0
        self.stream = stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        bar = stream.isatty() if bar is None else bar
        self.bar = None
        if bar and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, file=stream, unit="task", dynamic_ncols=True)

    def add(self, n):
        """``n`` more tasks to run (the alignments planned once a fit is done)."""
        self.total += n
        if self.bar is not None:
            self.bar.total = self.total
            self.bar.refresh()

    def finished(self, name, state, running):
        self.done += state == "done"
        self.failed += state == "failed"
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(done=self.done, failed=self.failed, running=running, refresh=True)
            return
        finished = self.done + self.failed
        elapsed = time.perf_counter() - self.t0
        eta = elapsed / finished * (self.total - finished)
        print(f"batch: {name} {state} [{finished}/{self.total}: {self.done} done, {self.failed} failed, "
              f"{running} running, ETA {eta:.0f} s]", file=self.stream, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# -- the run --------------------------------------------------------------------------------
class _Lock:
    def __init__(self, out_dir):
        self.path = Path(out_dir) / "calpipe-batch.lock"

    def __enter__(self):
        self.file = open(self.path, "w")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise BatchError(f"{self.path.parent}: another batch run is using this output folder") from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.file, fcntl.LOCK_UN)
        self.file.close()


def _products_exist(row):
    return all(os.path.exists(p) for p in (row.get("products") or []))


def _next_attempt(row, fp):
    """The number of a task's next attempt: its earlier ones count while its inputs and
    parameters (``fp``) are the same."""
    return (row["attempts"] if row and row["fingerprint"] == fp else 0) + 1


class BatchRun:
    def __init__(self, options, stream=None):
        self.options = options
        self.stream = stream or sys.stdout
        self.out = Path(options.output_dir).resolve()
        self.staging = self.out / STAGING / "staged"

    def run(self):
        t0 = time.perf_counter()
        opts = self.options
        if opts.retries < 0:
            raise BatchError(f"--retries {opts.retries}: expected 0 or more")
        if opts.workers is not None and opts.workers < 1:
            raise BatchError(f"--workers {opts.workers}: expected 1 or more")
        self.groups, self.bad = plan(find_associations(opts.inputs))
        self.members = {m.key: m for g in self.groups for m in g.members}
        # The workers start while the client resolves the parameters and checksums the inputs.
        self.client = self.cluster = None
        starter = ThreadPoolExecutor(1)
        self.starting = starter.submit(start_client, opts) if self.members else None
        starter.shutdown(wait=False)
        try:
            self.class_path, self.pars, self.params_fp = resolve_pipeline(opts)
            if opts.archive:
                _check_archive(opts.archive)
            self.out.mkdir(parents=True, exist_ok=True)
            with _Lock(self.out):
                self.db = StateDB(self.out)
                try:
                    return self._run(t0)
                finally:
                    self.db.close()
        finally:
            self._shut_down()

    def _shut_down(self):
        """Close the client and the cluster this run started (waiting for one still starting)."""
        if self.client is None and self.starting is not None:
            with contextlib.suppress(Exception):  # started, never used: only to be closed
                self.client, self.cluster, *_ = self.starting.result()
        self.starting = None
        _shut_down(self.client, self.cluster)
        self.client = self.cluster = None

    def _run(self, t0):
        self.db.reset_running()
        for asn_path, error in self.bad:
            self.db.upsert(f"align:{asn_path}", kind="align", association=str(asn_path), name=asn_path.name,
                           inputs=[], params={}, fingerprint="", state="failed", attempts=0, error=error)
        self.progress = None
        self.group_of = {g.key: g for g in self.groups}
        self.applies = {}  # apply task key: (group, member)
        self.futures = {}
        self.first_attempt = {}  # a fit's or an alignment's first attempt in this run
        try:
            self.progress = Progress(len(self.groups), self.options.progress)
            self._execute()
        except KeyboardInterrupt:
            self.db.reset_running()
            raise
        finally:
            if self.progress is not None:
                self.progress.close()
            self._shut_down()
        if self.options.archive:
            self._archive()
        if self.options.ingest:
            self._ingest()
        return self._summary(self.bad, time.perf_counter() - t0)

    # -- what needs running ---------------------------------------------------------------------
    def _member_needs_run(self, member):
        row = self.db.get(member.key)
        known = (row["inputs"][0] if row and row["inputs"] else None)
        try:
            record = file_record(member.path, known)
        except OSError as err:
            self.db.upsert(member.key, kind="member", association=self._asn_of(member), name=member.root, inputs=[],
                           params=self.pars, fingerprint="", state="failed",
                           attempts=(row["attempts"] if row else 0),
                           error=f"{member.path}: cannot read ({err.strerror or err})")
            return False
        fp = fingerprint(record["sha256"], self.params_fp)
        staged = tasks.staged_path(self.staging, member.path)
        if self._done_with(row, fp) and staged.exists() and tasks.entry_path(self.staging, member.path).exists():
            return False
        meta, npixels, nresultants = _exposure_size(member.path)
        self.db.upsert(member.key, kind="member", association=self._asn_of(member), name=member.root,
                       inputs=[record], params=self.pars, fingerprint=fp, state="pending", attempts=0,
                       npixels=npixels, nresultants=nresultants, error=None)
        member.meta = meta
        return True

    def _done_with(self, row, fp):
        """Whether the task of ``row`` is done with the inputs and parameters ``fp`` and its
        products are all still there (and no ``--force``)."""
        return (not self.options.force and bool(row) and row["state"] == "done" and row["fingerprint"] == fp
                and _products_exist(row))

    def _asn_of(self, member):
        return ", ".join(str(g.asn_path) for g in self.groups if member in g.members)

    def _group_align_inputs(self, group):
        done = []
        for m in group.members:
            row = self.db.get(m.key)
            if row and row["state"] == "done":
                done.append((m, row))
        fp = fingerprint(self.params_fp, [(m.key, row["fingerprint"]) for m, row in done])
        return done, fp

    # -- execution ------------------------------------------------------------------------------
    def _ensure_client(self):
        if self.client is None:
            starting, self.starting = self.starting, None
            started = starting.result() if starting is not None else start_client(self.options)
            self.client, self.cluster, self.threads, self.cap = started

    def _submit(self, key, func, *args, reservation=None, **kwargs):
        self._ensure_client()
        resources = {MEMORY: reservation} if (reservation and self.cap) else None
        future = self.client.submit(func, *args, threads=self.threads, client_pid=os.getpid(), key=f"{key}#{time.monotonic_ns()}",
                                    resources=resources, pure=False, **kwargs)
        self.futures[future] = key
        return future

    def _finished(self, key, state):
        running = sum(len(v) for v in self.client.processing().values()) if self.client is not None else 0
        self.progress.finished(self._name(key), state, running)

    def _name(self, key):
        if key in self.members:
            return self.members[key].root
        if key in self.applies:
            return f"{self.applies[key][1].root} (alignment)"
        group = self.group_of.get(key)
        return f"{group.name} (alignment fit)" if group else key

    def _submit_task(self, key, attempt, reservation):
        """Submit attempt ``attempt`` of a planned task (a member, a fit or an alignment)."""
        self.db.upsert(key, state="running", attempts=attempt, reservation_mb=reservation)
        common = dict(attempt=attempt, reservation_mb=reservation, reservation=reservation)
        if key in self.members:
            return self._submit(key, tasks.calibrate_member, str(self.members[key].path), self.class_path, self.pars,
                                str(self.out), str(self.staging), **common)
        inputs = self.db.get(key)["inputs"]
        if key in self.applies:
            group, member = self.applies[key]
            staged, fit = (i["path"] for i in inputs)
            return self._submit(key, tasks.apply_alignment, staged, fit, self.class_path, self.pars,
                                str(self.out), name=f"{group.name}/{member.root}", **common)
        return self._submit(key, tasks.fit_association, [i["path"] for i in inputs], [i["fit"] for i in inputs],
                            self.class_path, self.pars, str(self.out), name=self.group_of[key].name, **common)

    def _enqueue(self, future):
        from distributed import as_completed

        if self.queue is None:
            self.queue = as_completed([future])
        else:
            self.queue.add(future)

    def _execute(self):
        history = self.db.history()
        self.queue = None
        waiting = {g.key: set() for g in self.groups}
        # Each member is submitted as soon as it is known to need a run: the first tasks start
        # while the client still checksums the others.
        for member in self.members.values():
            if not self._member_needs_run(member):
                continue
            for group in self.groups:
                if member in group.members:
                    waiting[group.key].add(member.key)
            self.progress.add(1)
            row = self.db.get(member.key)
            estimate = estimate_memory_mb(member.path, npixels=row["npixels"], nresultants=row["nresultants"],
                                          history=history, database=self.options.ingest)
            self.db.upsert(member.key, reservation_source=estimate.source)
            self._ensure_client()
            self._enqueue(self._submit_task(member.key, 1, self._capped(estimate.mb)))
        for group in self.groups:
            if not waiting[group.key]:
                self._maybe_align(group)
        for future in self.queue or ():
            key = self.futures.pop(future)
            retry = self._task_finished(key, future)
            if retry is not None:
                self._enqueue(retry)
            elif key in self.group_of and self.db.get(key)["state"] == "done":
                self._maybe_apply(self.group_of[key])
            elif key in self.members:
                for group in self.groups:
                    if key in waiting[group.key]:
                        waiting[group.key].discard(key)
                        if not waiting[group.key]:
                            self._maybe_align(group)

    def _task_finished(self, key, future):
        """Record a finished attempt; return the retry's future after running out of memory."""
        row = self.db.get(key)
        attempt, reservation = row["attempts"], row["reservation_mb"]
        outcome, error, result = _outcome(future)
        if outcome == "done":
            self.db.add_attempt(key, attempt, reservation, "done", wall_s=result["wall_s"], peak_mb=result["peak_mb"])
            products = [result["staged"], *result["products"]] if "staged" in result else result["products"]
            self.db.upsert(key, state="done", wall_s=result["wall_s"], peak_mb=result["peak_mb"], products=products,
                           error=None)
            self._finished(key, "done")
            return None
        return self._retry_or_fail(key, attempt, reservation, outcome, error)

    def _retry_or_fail(self, key, attempt, reservation, outcome, error):
        """Record a failed attempt; after running out of memory, resubmit one rung higher.

        ``attempt`` counts this run's attempts (a fit's or an alignment's also earlier runs'):
        ``--retries`` bounds those made in this run.
        """
        self.db.add_attempt(key, attempt, reservation, outcome, error=error)
        tries = attempt - self.first_attempt.get(key, 1) + 1
        if outcome == "memory" and tries <= self.options.retries and reservation is not None:
            bigger = next_reservation(reservation, self.cap)
            if bigger is not None:
                log.warning("%s ran out of memory at %.0f MB (%s): retrying with %.0f MB",
                            self._name(key), reservation, error, bigger)
                return self._submit_task(key, attempt + 1, bigger)
        if outcome == "memory":
            error = f"out of memory after {tries} attempt(s), last reservation {reservation or 0:.0f} MB: {error}"
        self.db.upsert(key, state="failed", error=error)
        self._finished(key, "failed")
        return None

    def _maybe_align(self, group):
        """Submit the product's fit over its calibrated members, unless done with the same ones."""
        done, fp = self._group_align_inputs(group)
        row = self.db.get(group.key)
        if not done:
            self.db.upsert(group.key, kind="align", association=str(group.asn_path), name=group.name,
                           inputs=[], params=self.pars, fingerprint=fp, state="failed", attempts=0,
                           error="no member was calibrated")
            self._finished(group.key, "failed")
            return
        if self._done_with(row, fp):
            self._finished(group.key, "done")
            self._maybe_apply(group)
            return
        inputs = [{"path": str(tasks.entry_path(self.staging, m.path)),
                   "fit": str(tasks.fit_path(self.staging, group.key, m.path)), "member": m.key} for m, _ in done]
        attempt = _next_attempt(row, fp)
        self.first_attempt[group.key] = attempt
        estimate = fit_memory_mb([peak for *_, peak in self.db.history("align")])
        self.db.upsert(group.key, kind="align", association=str(group.asn_path), name=group.name,
                       inputs=inputs, params=self.pars, fingerprint=fp, state="pending", attempts=attempt - 1,
                       npixels=max(r["npixels"] or 0 for _, r in done), nresultants=0,
                       reservation_source=estimate.source, error=None)
        self._enqueue(self._submit_task(group.key, attempt, self._capped(estimate.mb)))

    def _maybe_apply(self, group):
        """Submit each fitted member's alignment, unless done with the same fit result."""
        fit = self.db.get(group.key)
        history = [(n, peak) for n, _, peak in self.db.history("apply")]
        for item in fit["inputs"]:
            member = self.members[item["member"]]
            key = group.apply_key(member)
            self.applies[key] = (group, member)
            result_sum = sha256_of(item["fit"])
            fp = fingerprint(fit["fingerprint"], result_sum)
            row = self.db.get(key)
            if self._done_with(row, fp):
                continue
            attempt = _next_attempt(row, fp)
            self.first_attempt[key] = attempt
            npixels = self.db.get(member.key)["npixels"] or 0
            estimate = apply_memory_mb(npixels, history)
            inputs = [{"path": str(tasks.staged_path(self.staging, member.path))},
                      {"path": item["fit"], "sha256": result_sum}]
            self.db.upsert(key, kind="apply", association=str(group.asn_path), name=member.root, inputs=inputs,
                           params=self.pars, fingerprint=fp, state="pending", attempts=attempt - 1,
                           npixels=npixels, nresultants=0, reservation_source=estimate.source, error=None)
            self.progress.add(1)
            self._enqueue(self._submit_task(key, attempt, self._capped(estimate.mb)))

    def _capped(self, mb):
        self._ensure_client()  # the cap is the largest worker's capacity
        return min(mb, self.cap) if self.cap else mb

    # -- after the run ----------------------------------------------------------------------------
    def _finished_associations(self):
        by_asn = {}
        for group in self.groups:
            keys = [group.key, *(k for m in group.members for k in (m.key, group.apply_key(m)))]
            ok = all((self.db.get(k) or {}).get("state") == "done" for k in keys)
            by_asn[group.asn_path] = by_asn.get(group.asn_path, True) and ok
        return [asn for asn, ok in by_asn.items() if ok]

    def _archive(self):
        """One archive add per finished association: its members' uncal files and products.

        An association whose add fails keeps its products; the failure is the error line of
        its alignment task(s), and a later run of the same command tries the add again.
        """
        from calpipe.archive import Archive

        finished = self._finished_associations()
        if not finished:
            return
        try:
            archive = Archive(self.options.archive)
        except Exception as err:  # the archive became unusable during the run
            for asn_path in finished:
                self._archive_outcome(asn_path, [_one_line(err)])
            return
        with archive:
            for asn_path in finished:
                try:
                    result = archive.add(self._association_files(asn_path))
                    errors = result.errors
                except Exception as err:  # sqlalchemy, rendering and the file system raise many kinds
                    result, errors = None, [_one_line(err)]
                self._archive_outcome(asn_path, errors)
                if result is not None:
                    print(f"archived {asn_path.name} in {self.options.archive}: {len(result.added)} new "
                          f"version(s), {len(result.unchanged)} unchanged", file=self.stream)

    def _association_files(self, asn_path):
        """The members' raw exposures and every product of an association (staged images aside)."""
        files = {}
        for group in self.groups:
            if group.asn_path != asn_path:
                continue
            for member in group.members:
                files[str(member.path)] = None
                for key in (member.key, group.apply_key(member)):
                    files.update(dict.fromkeys(p for p in self.db.get(key)["products"] or []
                                               if not Path(p).is_relative_to(self.staging)))
        return list(files)

    def _archive_outcome(self, asn_path, errors):
        error = f"archive: {'; '.join(errors)}" if errors else None
        for group in self.groups:
            if group.asn_path == asn_path and self.db.get(group.key)["error"] != error:
                self.db.upsert(group.key, error=error)

    def _ingest(self):
        from calpipe.pipelines.training_ingest import TrainingIngestPipeline

        for asn_path in self._finished_associations():
            pipeline = TrainingIngestPipeline(steps={"ingest": {"database": self.options.ingest,
                                                                "cal_dir": str(self.out)}})
            pipeline.run(str(asn_path))
            print(f"ingested {asn_path.name} into {self.options.ingest}", file=self.stream)

    def _summary(self, bad, wall):
        out = self.stream
        failures = []
        print(f"{'association / product':<44} {'members':>7} {'done':>5} {'failed':>6} {'wall s':>8} "
              f"{'peak MB':>8}  aligned", file=out)
        for group in self.groups:
            rows = [self.db.get(m.key) for m in group.members]
            align = self.db.get(group.key) or {}
            applies = [a for a in (self.db.get(group.apply_key(m)) for m in group.members) if a]
            states = [r["state"] for r in rows]
            finished = [r for r in [*rows, align, *applies] if r.get("state") == "done"]
            walls = [r["wall_s"] or 0.0 for r in finished]
            peaks = [r["peak_mb"] or 0.0 for r in finished]
            aligned = align.get("state", "-")
            if aligned == "done" and any(a["state"] != "done" for a in applies):
                aligned = "failed" if any(a["state"] == "failed" for a in applies) else "pending"
            label = f"{group.asn_path.name} / {group.name}"
            print(f"{label[:44]:<44} {len(rows):>7} {states.count('done'):>5} {states.count('failed'):>6} "
                  f"{sum(walls):>8.1f} {max(peaks, default=0.0):>8.0f}  {aligned}", file=out)
            failures += [(r["name"], r["error"]) for r in rows if r["state"] == "failed"]
            failures += [(f"{a['name']} (alignment)", a["error"]) for a in applies if a["state"] == "failed"]
            if align.get("state") == "failed":
                failures.append((f"{group.name} (alignment fit)", align["error"]))
            elif align.get("error"):  # done, but its products could not be archived
                failures.append((group.name, align["error"]))
        failures += [(p.name, e) for p, e in bad]
        for name, error in dict.fromkeys(failures):
            print(f"FAILED {name}: {error}", file=out)
        n_failed = len(dict.fromkeys(failures))
        print(f"batch: {len(self.members)} member(s) in {len(self.groups)} product(s), {n_failed} failure(s), "
              f"{wall:.1f} s; state in {self.db.path}", file=out)
        return 1 if n_failed else 0


def _check_archive(folder):
    """Open (creating it if new) the archive a run will add to, before any work is done."""
    from calpipe.archive import Archive

    try:
        Archive(folder).close()
    except CalpipeError as err:
        raise BatchError(f"--archive {folder}: {err}") from None
    except OSError as err:
        raise BatchError(f"--archive {folder}: cannot create the archive ({err.strerror or err})") from None


def _shut_down(client, cluster):
    """Close the client and a cluster this run started, without the nanny's complaints of slow exits."""
    quiet = logging.getLogger("distributed")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    finally:
        quiet.setLevel(level)


def _outcome(future):
    """('done', None, result), ('memory', error line, None) or ('failed', error line, None)."""
    from distributed import KilledWorker

    try:
        result = future.result()
    except MemoryError as err:
        return "memory", _one_line(err), None
    except KilledWorker:
        return "memory", "worker killed (out of memory or lost)", None
    except Exception as err:
        return "failed", _one_line(err), None
    for outcome in ("failed", "memory"):
        if outcome in result:
            return outcome, result[outcome], None
    return "done", None, result


def run_batch(options, stream=None):
    """Run a batch; return the exit status (0 all done, 1 some task failed)."""
    return BatchRun(options, stream).run()


def status(out_dir):
    """Every task row and the totals of a batch output folder (read only)."""
    from .state import totals

    db = StateDB(out_dir, readonly=True)
    try:
        rows = db.all()
        for row in rows:
            row["attempt_log"] = db.attempts_of(row["key"])
    finally:
        db.close()
    return {"tasks": rows, "totals": totals(rows)}


__all__ = ["BatchError", "Options", "run_batch", "status"]
