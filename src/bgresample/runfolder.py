"""Run folders: every command writes its resolved config, seeds, code version and a log there.

A run folder is one that bgresample created: its ``meta.json`` carries a ``code_version``. Only
new or empty folders and run folders are written into (an entry bgresample did not write, a
dotfile included, makes a folder the user's); a command holds ``.lock`` in the folder (an
``flock``, released when the command ends or its process dies) so that two commands never write
into the same folder at once, and writes nothing through a symbolic link inside it
(:mod:`bgresample.files`). ``--resume`` continues a run only with the command, settings and
inputs it was started with (:data:`RESUMABLE_CHANGES` lists the settings that may differ;
:mod:`bgresample.provenance` identifies the inputs); ``--overwrite`` replaces the run's files. A
command that fails before it writes any result removes what it wrote (:func:`release_locks`), so
that it can simply be run again.

An input file (a checkpoint, weights, a subset manifest) that lies in a run folder leads back to
that run (:func:`input_origin`): a stage command reading it starts from the run's
``config.yaml``, and refuses settings that change the run's data or model (:func:`defining`).
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
import yaml

import bgresample
from bgresample import config as C
from bgresample import files, provenance
from bgresample.errors import UserError, shorten
from bgresample.files import UnsafePathError, WriteError, atomic_write_text

try:
    import fcntl
except ImportError:  # not on POSIX: no locking
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("bgresample")

LOCK_NAME = ".lock"
#: The lock file's mark that bgresample wrote it (a folder holding only such a lock is empty).
LOCK_MARK = {"by": "bgresample"}
#: What a command writes into its run folder besides results (its settings, log and training
#: curves): a folder holding nothing else holds no results (:func:`holds_results`).
BOOKKEEPING = frozenset({LOCK_NAME, "meta.json", "config.yaml", "log.txt", "tensorboard", "wandb"})
#: The arguments of stage commands that are input files: recorded in ``meta.json``, checked on
#: --resume, and traced back to the run that made them (:func:`input_origin`).
INPUT_FILES = ("checkpoint", "subset", "weights")

#: The commands that continue a run with ``--resume`` (the others write their results at the end
#: and are simply run again).
RESUMABLE_COMMANDS = ("run", "compare-selectors", "pretrain", "resample", "finetune")
#: Config keys that may differ between a run and its ``--resume``: they change where the data
#: is read from and how fast, not the results. ``run.seeds`` may only grow (more seeds).
RESUMABLE_CHANGES = (
    "device",
    "data.workers",
    "data.root",
    "accel.*",
    "log.*",
    "a larger run.seeds",
)

_ABSENT = object()


def code_version() -> str:
    """Package version plus the git commit (and ``-dirty``) when run from a checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{bgresample.__version__}+{sha}" if sha else bgresample.__version__


# -- the lock ----------------------------------------------------------------------------------


class RunLock:
    """An exclusive ``flock`` on ``folder/.lock``, which names its holder (pid, host, start) in
    JSON. :meth:`release` removes the file; the kernel drops the lock when the holder's process
    dies, so a stale file (left by a killed command) never blocks."""

    def __init__(self, folder: Path, fd: int | None) -> None:
        self.path = folder / LOCK_NAME
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        files.unconfine(self.path.parent)
        fd, self._fd = self._fd, None
        if _same_file(self.path, fd):  # removed while held: the next command makes a new one
            try:
                os.unlink(self.path)
            except OSError:
                pass
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            pass
        os.close(fd)


def _same_file(path: Path, fd: int) -> bool:
    """Whether ``path`` (not followed) is the file open as ``fd``."""
    try:
        a, b = os.lstat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def lock_run_folder(folder: str | Path) -> RunLock:
    """Take the lock of ``folder`` (which must exist) without waiting; a :class:`UserError`
    naming the holder's pid and host if another command holds it. Locks are per open file, so a
    second lock of the same folder in this process is refused too. ``.lock`` is opened without
    following a link, and the folder is confined (:func:`bgresample.files.confine`) while held."""
    folder = Path(folder)
    if fcntl is None:
        return RunLock(folder, None)
    path = folder / LOCK_NAME
    for _ in range(5):
        try:
            fd = files.open_lock(path)
        except UnsafePathError:
            raise
        except OSError as e:
            raise WriteError(path, e, False) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe_holder(fd)
            os.close(fd)
            raise UserError(
                f"{folder} is in use by another bgresample command ({holder}); wait for it to "
                "finish, or choose another --out"
            ) from None
        except OSError:  # a file system without locks (some network mounts): go on unlocked
            files.confine(folder)
            return RunLock(folder, fd)
        if _same_file(path, fd):
            break
        os.close(fd)  # the holder released (and removed) the file we locked: lock the new one
    else:
        raise UserError(f"{folder}: could not take its lock {path}; try again")
    files.confine(folder)
    info = {
        **LOCK_MARK,
        "pid": os.getpid(),
        "host": platform.node(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
    except OSError:
        pass  # the lock holds without its description
    return RunLock(folder, fd)


def _lock_info(fd: int) -> dict[str, Any]:
    """The JSON a lock file holds (``{}`` where it is empty, unreadable or not an object)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def _describe_holder(fd: int) -> str:
    info = _lock_info(fd)
    try:
        return f"pid {int(info['pid'])} on host {info['host']}, started {info['started']}"
    except (KeyError, TypeError, ValueError):
        return "a process that has not yet written its pid"


_held: list[RunLock] = []
#: The run folders :func:`prepare_run_folder` started afresh (not resumed), and whether it
#: created them.
_started: dict[Path, bool] = {}


def release_locks(discard: bool = False) -> list[Path]:
    """Release the locks :func:`prepare_run_folder` took (the CLI calls this when a command
    ends, however it ends). With ``discard`` (the command failed), the folders it started that
    hold no results (:func:`holds_results`) lose what it wrote, and are removed where it created
    them, so that the same command can simply be run again; returns those folders."""
    started, discarded = dict(_started), []
    _started.clear()
    while _held:
        lock = _held.pop()
        folder = lock.path.parent
        emptied = discard and folder in started and _empty_unstarted(folder)
        lock.release()
        if emptied:
            if started[folder]:
                try:
                    folder.rmdir()
                except OSError:
                    pass
            discarded.append(folder)
    return discarded


def holds_results(folder: Path) -> bool:
    """Whether ``folder`` holds a file (or link) besides :data:`BOOKKEEPING`, at any depth."""
    for here, dirs, names in os.walk(folder):
        if Path(here) == folder:
            dirs[:] = [d for d in dirs if d not in BOOKKEEPING]
            names = [n for n in names if n not in BOOKKEEPING]
        if names or any(os.path.islink(os.path.join(here, d)) for d in dirs):
            return True
    return False


def _empty_unstarted(folder: Path) -> bool:
    """Remove every entry of ``folder`` but its lock when it holds no results (its log file
    closed first); returns whether it did."""
    if holds_results(folder):
        return False
    log_file = os.path.abspath(folder / "log.txt")
    for h in [h for h in log.handlers if isinstance(h, _LogFile)]:
        if h.baseFilename == log_file:
            log.removeHandler(h)
            h.close()
    for entry in os.scandir(folder):
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)
    return True


# -- what a folder holds -------------------------------------------------------------------------


def _our_lock(folder: Path) -> bool:
    """Whether ``folder/.lock`` is a lock file bgresample wrote (a regular file carrying
    :data:`LOCK_MARK`); read without following a link."""
    try:
        fd = os.open(folder / LOCK_NAME, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        info = _lock_info(fd)
    finally:
        os.close(fd)
    return all(info.get(k) == v for k, v in LOCK_MARK.items())


def read_run_meta(folder: Path) -> dict[str, Any] | None:
    """``meta.json`` of a folder bgresample wrote (one with a ``code_version``), else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and "code_version" in meta else None


def _check_folder(out: Path, overwrite: bool, resume: bool, command: str) -> dict[str, Any] | None:
    """The ``meta.json`` of the run in ``out``, or None when ``out`` is new or empty; refuses a
    folder that is not a run, and a run without ``--overwrite`` / ``--resume``."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise UserError(f"--out {out} is a file, not a folder; choose another --out")
    try:
        names = sorted(os.listdir(out))
    except OSError as e:
        raise UserError(
            f"cannot read the folder {out}: {e.strerror}; choose another --out"
        ) from None
    if not names or (names == [LOCK_NAME] and _our_lock(out)):
        return None
    meta = read_run_meta(out)
    if meta is None:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise UserError(
            f"{out} is not empty and is not a bgresample run folder (it holds {shown}); "
            "bgresample writes only into new or empty folders and its own runs, even with "
            "--overwrite; choose an empty or new --out"
        )
    if not (overwrite or resume):
        resume_it = " --resume to continue it," if command in RESUMABLE_COMMANDS else ""
        raise UserError(
            f"{out} already holds a run; pass --overwrite to replace it,{resume_it} or choose "
            "another --out"
        )
    return meta


# -- comparing settings on --resume ------------------------------------------------------------


def _allowed(key: str, old: Any, new: Any) -> bool:
    if key in ("device", "data.workers", "data.root") or key.startswith(("accel.", "log.")):
        return True
    if key == "run.seeds":
        return isinstance(old, int) and isinstance(new, int) and new >= old
    return False


def _show(v: Any) -> str:
    if v is _ABSENT:
        return "(absent)"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, list | dict) or (isinstance(v, str) and not v.isprintable()):
        return shorten(json.dumps(v))
    return shorten(str(v))


def config_changes(saved: dict[str, Any], cfg: C.Config) -> list[tuple[str, Any, Any]]:
    """(dotted key, old, new) for every value of ``cfg`` that differs from ``saved`` (a run's
    ``config.yaml``), both read as YAML so that they compare as written. A key the run's config
    lacks (added to bgresample since) at its default value is no change."""
    old = C.flatten(saved)
    new = C.flat_config(cfg)
    default = C.flat_config(C.default_config())
    keys = list(new) + [k for k in old if k not in new]
    return [
        (k, old.get(k, _ABSENT), new.get(k, _ABSENT))
        for k in keys
        if old.get(k, _ABSENT) != new.get(k, _ABSENT)
        and not (k not in old and k in default and new.get(k) == default[k])
    ]


def check_resume(
    out: Path,
    cfg: C.Config,
    meta: dict[str, Any] | None = None,
    command: str | None = None,
    record: dict[str, Any] | None = None,
) -> bool:
    """Refuse ``--resume`` by another command than the one that made the run (``meta``), or
    with settings (beyond :data:`RESUMABLE_CHANGES`), options or inputs (``record``: the new
    :func:`provenance_record`) other than the run's; returns whether ``run.seeds`` grew."""
    path = out / "config.yaml"
    how = (
        f"resume with the settings in {path} (e.g. --config {path}; only "
        f"{', '.join(RESUMABLE_CHANGES[:-1])} and {RESUMABLE_CHANGES[-1]} may change) and the "
        "inputs it was made from, or start a new run with another --out or --overwrite"
    )
    made_by = (meta or {}).get("command")
    if command is not None and made_by is not None and made_by != command:
        raise UserError(
            f"--resume: {out} holds a run of `bgresample {shorten(str(made_by))}`, not of "
            f"`bgresample {command}`, whose outputs would replace its results; resume it with "
            f"`bgresample {shorten(str(made_by))} ... --resume`, choose another --out, or pass "
            "--overwrite (not --resume) to replace it"
        )
    if not path.is_file():
        raise UserError(
            f"--resume: {out} has no config.yaml, so its settings are unknown; start a new run "
            "with --overwrite or another --out"
        )
    try:
        saved = C.read_yaml_file(path, "the run's config")
    except UserError as e:
        raise UserError(f"--resume: {e}; {how}") from None
    if not isinstance(saved, dict):
        raise UserError(f"--resume: {path} does not hold a config mapping; {how}")
    changes = config_changes(saved, cfg)
    refused = [f"{k}: {_show(a)} -> {_show(b)}" for k, a, b in changes if not _allowed(k, a, b)]
    if record is not None and isinstance((meta or {}).get("options"), dict):
        old, new = meta["options"], record["options"]
        refused += [
            f"{k}: {_show(old.get(k, _ABSENT))} -> {_show(new.get(k, _ABSENT))}"
            for k in [*new, *(k for k in old if k not in new)]
            if old.get(k, _ABSENT) != new.get(k, _ABSENT)
        ]
    if record is not None and isinstance((meta or {}).get("inputs"), dict):
        refused += provenance.differences(meta["inputs"], record["inputs"])
    if refused:
        shown = "; ".join(refused[:5])
        more = f"; and {len(refused) - 5} more" if len(refused) > 5 else ""
        raise UserError(
            f"--resume: the settings or inputs differ from those the run in {out} was started "
            f"with ({shown}{more}); {how}"
        )
    return any(k == "run.seeds" for k, _, _ in changes)


def provenance_record(
    cfg: C.Config,
    inputs: dict[str, str | os.PathLike | None] | None = None,
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What ``meta.json`` records of a command's origin: ``options`` (the command's arguments
    that are not config keys, e.g. ``--variant``) and the identity of each input file
    (``inputs``: ``--checkpoint`` ...: path) and of the data ``cfg`` reads
    (:func:`bgresample.provenance.record`)."""
    return {
        "options": {k: v for k, v in (options or {}).items() if v is not None},
        "inputs": provenance.record(inputs or {}, cfg),
    }


# -- the run an input file came from -------------------------------------------------------------

#: Keys of ``data`` that may differ from those of the run an input file came from: where and how
#: the data is read, the flips of augmentation, and the sizes of the generated OOD test sets.
FREE_DATA_KEYS = (
    "data.root",
    "data.workers",
    "data.download",
    "data.flip",
    "data.background_flip",
    "data.embedded.ood_size",
    "data.embedded.noise_ood_size",
    "data.mnist.ood_size",
    "data.mnist.noise_ood_size",
)
#: Datasets named by ``KIND:PATH``: the same kind at another path is the same data when its files
#: are (their fingerprints, :mod:`bgresample.provenance`, as the run's ``meta.json`` has them).
DATA_SPECS = ("data.id", "data.background")
#: The keys that fix only the background pool: free for a model checkpoint read alone (a model
#: file holds no pool indices; pre-training never reads the pool), defining for weights and
#: subset manifests.
POOL_KEYS = ("data.background", "data.validation.pool_fraction")
SEED_FOLDER = re.compile(r"seed_(\d+)")


def defining(key: str) -> bool:
    """Whether the dotted config ``key`` fixes the data or the model of a run's files: every key
    of ``data`` (the ID data and the pool, whose indices weights and manifests hold) and of
    ``model`` (the network), but :data:`FREE_DATA_KEYS`."""
    return key.startswith(("data.", "model.")) and key not in FREE_DATA_KEYS


@dataclass(frozen=True)
class Origin:
    """The run an input file came from: the argument (``flag`` ``path``), the run ``folder``, its
    config (``cfg``, from its ``config.yaml``) and the data identities of its ``meta.json``
    (``inputs``), and the seed of the ``seed_<S>/`` folder of ``run`` holding the file (None
    elsewhere)."""

    flag: str
    path: Path
    folder: Path
    cfg: C.Config
    inputs: dict[str, Any]
    seed: int | None
    #: The only input is a model checkpoint (no subset or weights, from a run or not): the
    #: :data:`POOL_KEYS` may differ.
    pool_free: bool = False

    def settings(self) -> dict[str, Any]:
        """The run's config as a plain nested dict."""
        return yaml.safe_load(C.dump(self.cfg))


def run_folder_of(path: str | os.PathLike) -> Path | None:
    """The nearest folder above ``path`` that is a run folder (:func:`read_run_meta`), where it
    holds its ``config.yaml``; else None."""
    for folder in Path(path).absolute().parents:
        if read_run_meta(folder) is not None:
            return folder if (folder / "config.yaml").is_file() else None
    return None


def _origin(flag: str, path: Path, folder: Path) -> Origin:
    cfg_path = folder / "config.yaml"
    try:
        raw = C.read_yaml_file(cfg_path, "the run's config")
        cfg = C.from_dict(C.merge(C.default_dict(), raw if isinstance(raw, dict) else {}))
    except UserError as e:
        raise UserError(
            f"{flag} {path} comes from the run {folder}, whose config does not load ({e}); pass "
            "--config FILE with the settings that file was made with"
        ) from None
    meta = read_run_meta(folder) or {}
    inputs = meta.get("inputs") if isinstance(meta.get("inputs"), dict) else {}
    parts = path.absolute().relative_to(folder).parts
    match = SEED_FOLDER.fullmatch(parts[0]) if len(parts) > 1 else None
    seed = int(match.group(1)) if match else None
    return Origin(flag, path, folder, cfg, inputs, seed)


def input_origin(inputs: dict[str, str | os.PathLike | None]) -> Origin | None:
    """The run that the first of ``inputs`` (``--checkpoint`` ...: path) lying in a run folder
    came from, or None; refused (:class:`UserError`) where two inputs come from runs whose data
    or model differ (:func:`defining_changes`)."""
    found = []
    for flag, value in inputs.items():
        if value is None or not Path(value).is_file():
            continue  # a missing file is for the command to report
        folder = run_folder_of(value)
        if folder is not None:
            found.append(_origin(flag, Path(value), folder))
    for other in found[1:]:
        clash = defining_changes(found[0], other.cfg)
        if clash:
            first = found[0]
            raise UserError(
                f"{first.flag} {first.path} and {other.flag} {other.path} come from runs of "
                f"other data or models ({first.folder} -> {other.folder}: {clash}); pass inputs "
                "made from the same data and model"
            )
    pool_files = [f for f in ("--subset", "--weights") if inputs.get(f) is not None]
    if len(found) == 1 and found[0].flag == "--checkpoint" and not pool_files:
        return replace(found[0], pool_free=True)
    return found[0] if found else None


def defining_changes(origin: Origin, cfg: C.Config) -> str:
    """``key: old -> new; ...`` for each :func:`defining` key whose value in ``cfg`` differs
    from the run's (but the :data:`POOL_KEYS` for a checkpoint read alone; the first five, then
    a count); empty where none does."""
    changes = [
        f"{k}: {_show(a)} -> {_show(b)}"
        for k, a, b in config_changes(origin.settings(), cfg)
        if defining(k)
        and not (origin.pool_free and k in POOL_KEYS)
        and not (k in DATA_SPECS and _same_data(k, origin, cfg))
    ]
    more = f"; and {len(changes) - 5} more" if len(changes) > 5 else ""
    return "; ".join(changes[:5]) + more


def _same_data(key: str, origin: Origin, cfg: C.Config) -> bool:
    """Whether ``data.id`` / ``data.background`` (``key``) of ``cfg`` is the run's dataset at
    another path: the same kind, and the same fingerprints as the run recorded."""
    from bgresample.data.kinds import parse_spec

    name = key.removeprefix("data.")
    old, new = getattr(origin.cfg.data, name), getattr(cfg.data, name)
    try:
        if old is None or new is None or parse_spec(old)[0] != parse_spec(new)[0]:
            return False
    except UserError:  # a spec that does not parse: the loader explains it
        return False

    now = {
        k: {"path": str(p), "identity": provenance.fingerprint(p)}
        for k, p in provenance.entries(provenance.data_inputs(cfg), key).items()
    }
    then = provenance.entries(origin.inputs, key)
    return bool(now) and not provenance.differences(then, now)


def check_origin(origin: Origin, cfg: C.Config, given: str) -> None:
    """Refuse ``cfg`` where its data or model differ from those of the run ``origin`` (``given``
    names what set them: ``--config FILE``, ``--set``, ...)."""
    clash = defining_changes(origin, cfg)
    if clash:
        raise UserError(
            f"{given} disagrees with the run {origin.folder} that made {origin.flag} "
            f"{origin.path} on keys that fix its data or model ({clash}); leave them out to use "
            f"that run's settings, or pass {origin.flag} from a run made with these"
        )


# -- preparing the folder ----------------------------------------------------------------------


def _clear(out: Path, keep: set[str], inputs: dict[str, Any]) -> None:
    """Remove every entry of the run folder ``out`` but ``keep`` (links are removed, never
    followed); refused when one of the command's ``inputs`` (a :func:`provenance_record`'s)
    lies among them."""
    root = out.resolve()
    for key, item in inputs.items():
        path = Path(item["path"]).resolve()
        if path.is_relative_to(root) and path != root:
            top = path.relative_to(root).parts[0]
            if top not in keep:
                raise UserError(
                    f"{key} {item['path']} lies inside {out}, whose files --overwrite would "
                    "remove before reading it; copy it out of the folder first, or choose "
                    "another --out"
                )
    for entry in os.scandir(out):
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def prepare_run_folder(
    out: str | Path,
    cfg: C.Config,
    command: str,
    *,
    overwrite: bool = False,
    resume: bool = False,
    write: bool = True,
    inputs: dict[str, str | os.PathLike | None] | None = None,
    options: dict[str, Any] | None = None,
) -> Path:
    """Create ``out``, lock it, refuse to clobber another run, write ``config.yaml`` and
    ``meta.json`` (with :func:`provenance_record` of ``inputs`` and ``options``).

    Only a new or empty folder or a bgresample run folder is accepted; a run is refused unless
    ``overwrite`` or ``resume`` is given. ``resume`` continues only a run of the same command,
    settings, options and inputs (:func:`check_resume`; a grown ``run.seeds`` is written back
    to ``config.yaml``; ``meta.json`` keeps its content and lists each resume under
    ``resumed``). ``overwrite`` removes the run's files first (``run`` and
    ``compare-selectors`` keep ``pretrain/``, reused when its config matches). The folder
    stays locked (:func:`release_locks`). ``write=False`` (non-zero ranks) only returns the
    path.
    """
    out = Path(out)
    if not write:
        return out
    _check_folder(out, overwrite, resume, command)  # before anything is created in a foreign folder
    record = provenance_record(cfg, inputs, options)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(
            f"cannot create the run folder {out}: {e.strerror}; choose another --out"
        ) from None
    try:
        lock = lock_run_folder(out)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    try:
        meta = _check_folder(out, overwrite, resume, command)  # again, now nobody else writes
        stamp = {
            "argv": sys.argv,
            "code_version": code_version(),
            "host": platform.node(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        if resume and meta is not None:
            if check_resume(out, cfg, meta, command, record):
                atomic_write_text(out / "config.yaml", C.dump(cfg))
            earlier = meta.get("resumed")
            earlier = earlier if isinstance(earlier, list) else []
            meta["resumed"] = [*earlier, {"command": command, **stamp}]
            atomic_write_text(out / "meta.json", json.dumps(meta, indent=2))
        else:
            if meta is not None:  # --overwrite
                keep = {LOCK_NAME, "meta.json"}
                if meta.get("command") == command and command in ("run", "compare-selectors"):
                    keep.add("pretrain")
                _clear(out, keep, record["inputs"])
            fresh = {
                "command": command,
                "argv": stamp["argv"],
                "seed": cfg.seed,
                "code_version": stamp["code_version"],
                "torch": torch.__version__,
                # CPU results depend on it: kernels of other widths round differently
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "python": platform.python_version(),
                "host": stamp["host"],
                "started": stamp["started"],
                **record,
            }
            atomic_write_text(out / "meta.json", json.dumps(fresh, indent=2))
            atomic_write_text(out / "config.yaml", C.dump(cfg))
    except BaseException:
        lock.release()
        raise
    _held.append(lock)
    if not (resume and meta is not None):
        _started[out] = created
    return out


class _LogFile(logging.FileHandler):
    """A log file opened without following a link (:func:`bgresample.files.open_append`)."""

    def _open(self) -> Any:
        return files.open_append(self.baseFilename)


def setup_logging(out: Path | None, quiet: bool = False, write: bool = True) -> None:
    """Log to stderr (unless ``quiet``) and to ``out/log.txt``."""
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    if not quiet:
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(h)
    if out is not None and write:
        try:
            out.mkdir(parents=True, exist_ok=True)
            fh = _LogFile(out / "log.txt")
        except UnsafePathError:
            raise
        except OSError as e:
            raise UserError(
                f"cannot write the log file {out / 'log.txt'}: {e.strerror}; choose another --out"
            ) from None
        fh.setFormatter(fmt)
        log.addHandler(fh)


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2))
