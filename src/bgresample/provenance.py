"""What a run folder was made from: its command, its options and the identity of every input file.

``meta.json`` records, besides the config, the options of the command that are not config keys
(``--variant``, ``--scores``, ...) and a fingerprint of each input it reads: ``--checkpoint``,
``--subset``, ``--weights`` and the ID, background and OOD data that the config points to.
``--resume`` compares them with the new command's (:func:`differences`), so a run is never
continued from other inputs.

A fingerprint identifies content, not location (a dataset moved to another ``--data-root`` is
the same input): a file's size and SHA-256 (of 16 chunks of 64 KiB spread over the file when it
is larger than 64 MiB); a folder's file count, byte count and one SHA-256 over its sorted
``(relative path, size)`` listing and the fingerprints of 16 of its files spread over that
listing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

FULL_HASH_LIMIT = 64 << 20
CHUNK = 64 << 10
SAMPLES = 16


def _file_digest(path: Path, size: int) -> tuple[str, bool]:
    """(SHA-256 hex, whether sampled) of a file of ``size`` bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        if size <= FULL_HASH_LIMIT:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
            return h.hexdigest(), False
        h.update(size.to_bytes(8, "little"))
        for k in range(SAMPLES):
            f.seek((size - CHUNK) * k // (SAMPLES - 1))
            h.update(f.read(CHUNK))
    return h.hexdigest(), True


def _walk(folder: Path) -> list[tuple[str, int]]:
    """(relative path, size) of every regular file under ``folder`` (links to files and folders
    followed once per real folder), sorted."""
    out: list[tuple[str, int]] = []
    seen: set[tuple[int, int]] = set()
    stack = [(folder, "")]
    while stack:
        here, rel = stack.pop()
        st = here.stat()
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(here) as entries:
            for e in entries:
                name = f"{rel}{e.name}"
                try:
                    if e.is_dir():
                        stack.append((Path(e.path), name + "/"))
                    elif e.is_file():
                        out.append((name, e.stat().st_size))
                except OSError:
                    continue
    return sorted(out)


def fingerprint(path: str | os.PathLike) -> dict[str, Any] | None:
    """The identity of a file or folder (module docstring), or None where nothing is there."""
    path = Path(path)
    try:
        if path.is_file():
            size = path.stat().st_size
            digest, sampled = _file_digest(path, size)
            out: dict[str, Any] = {"type": "file", "bytes": size, "sha256": digest}
            return {**out, "sampled": True} if sampled else out
        if path.is_dir():
            listing = _walk(path)
            h = hashlib.sha256()
            for name, size in listing:
                h.update(f"{name}\0{size}\n".encode("utf-8", "surrogateescape"))
            n = len(listing)
            for k in sorted({(n - 1) * i // (SAMPLES - 1) for i in range(SAMPLES)} if n else ()):
                name, size = listing[k]
                h.update(_file_digest(path / name, size)[0].encode())
            total = sum(size for _, size in listing)
            return {"type": "folder", "files": n, "bytes": total, "sha256": h.hexdigest()}
    except OSError:
        return None
    return None


def data_inputs(cfg: Any) -> dict[str, Path]:
    """Where the ID data, the background pool and the OOD sets of ``cfg`` are read from
    (``data.id``, ``data.background``, ``evaluate.ood[NAME]``): the files a kind expects under
    its path, else the path itself; generated and embedded sets have none. Specs that do not
    parse are left to the loaders, which explain them."""
    from bgresample.data import kinds
    from bgresample.data.embedded import default_data_root
    from bgresample.errors import UserError

    root = cfg.data.root if cfg.data.root is not None else str(default_data_root())
    specs = [("data.id", cfg.data.id, "id"), ("data.background", cfg.data.background, "background")]
    ood = [cfg.evaluate.ood] if isinstance(cfg.evaluate.ood, str) else list(cfg.evaluate.ood)
    specs += [(f"evaluate.ood[{s}]", s, "ood") for s in ood]
    out: dict[str, Path] = {}
    for key, spec, role in specs:
        if spec is None or (":" not in spec and spec not in kinds.KINDS):
            continue
        try:
            name, path = kinds.parse_spec(spec)
            kind = kinds.get_kind(name, role)
            where = kinds.resolve_path(kind, path, root)
        except UserError:
            continue
        if where is None:
            continue
        if kind.expected and path is None:
            for entry in kind.expected:
                out[f"{key}/{entry}"] = where / entry
        else:
            out[key] = where
    return out


def record(files: dict[str, str | os.PathLike | None], cfg: Any) -> dict[str, Any]:
    """``{input: fingerprint}`` for the command's input files (``--checkpoint`` ...: path) and
    the data of ``cfg``; the path is kept for the messages, only the fingerprint is compared."""
    paths = {k: Path(v) for k, v in files.items() if v is not None}
    paths.update(data_inputs(cfg))
    return {k: {"path": str(p), "identity": fingerprint(p)} for k, p in paths.items()}


def entries(inputs: dict[str, Any], key: str) -> dict[str, Any]:
    """The entries of ``inputs`` (a :func:`record`, or :func:`data_inputs`) for the input
    ``key``: its own, and ``key/FILE`` for each file a kind expects under its path."""
    return {k: v for k, v in inputs.items() if k == key or k.startswith(f"{key}/")}


def shared_data(inputs: dict[str, Any]) -> list[str]:
    """One phrase per OOD set of a :func:`record` whose files have the fingerprint of the
    pool's or the ID data's files: a set that was trained on, or that is the ID data."""
    out = []
    for key, rec in inputs.items():
        ident = rec.get("identity") if isinstance(rec, dict) else None
        if not key.startswith("evaluate.ood[") or ident is None:
            continue
        for data, what in (("data.background", "the background pool"), ("data.id", "the ID data")):
            if any(
                isinstance(v, dict) and v.get("identity") == ident
                for v in entries(inputs, data).values()
            ):
                name = key[len("evaluate.ood[") : key.index("]")]
                out.append(f"OOD set {name} is {what} ({rec.get('path')}, same fingerprint)")
    return out


def _short(identity: dict[str, Any] | None) -> str:
    if identity is None:
        return "absent"
    size = f"{identity['files']} files, " if identity.get("type") == "folder" else ""
    return f"{size}{identity.get('bytes')} bytes, sha256 {str(identity.get('sha256'))[:12]}"


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """One phrase per input whose identity differs between two :func:`record` results."""
    out = []
    for key in [*new, *(k for k in old if k not in new)]:
        a, b = old.get(key), new.get(key)
        ida = a.get("identity") if isinstance(a, dict) else None
        idb = b.get("identity") if isinstance(b, dict) else None
        if ida == idb:
            continue
        if a is None or b is None:
            was = "none" if a is None else a.get("path")
            now = "none" if b is None else b.get("path")
            out.append(f"{key}: {was} -> {now}")
        else:
            out.append(
                f"{key}: other contents ({a.get('path')}: {_short(ida)} -> "
                f"{b.get('path')}: {_short(idb)})"
            )
    return out
