"""Where pretraining code comes from. Each source yields `Document`s, one per file:

- `dir:PATH`: every file under a folder (`.git` and hidden folders aside);
- `git:PATH`: the files a local git repository tracks (`git ls-files`), as checked out;
- `packages` or `packages:NAME,NAME`: the Python sources of the installed distributions (all of
  them, or the named ones): a large, real corpus already on the machine;
- `github:OWNER/REPO[@REF]`: the repository's archive from the GitHub API (MLSTACK_SOURCES_GITHUB_TOKEN).

The license hint is the distribution's declared license, or the first license file at the root
of a folder, repository or archive, matched against common licenses.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from mlstack.pretraining import Document, SourceError
from mlstack.settings import Settings

KINDS = ("dir", "git", "packages", "github")
LICENSE_FILES = ("LICENSE", "LICENSE.txt", "LICENSE.md", "LICENSE.rst", "COPYING", "LICENCE")
# The first of these phrases in a license file names it; enough for a hint, not a legal opinion.
LICENSE_PHRASES = (
    ("Apache License", "Apache-2.0"),
    ("MIT License", "MIT"),
    ("Permission is hereby granted, free of charge", "MIT"),
    ("GNU LESSER GENERAL PUBLIC", "LGPL"),
    ("GNU AFFERO GENERAL PUBLIC", "AGPL"),
    ("GNU GENERAL PUBLIC", "GPL"),
    ("Mozilla Public License", "MPL-2.0"),
    ("Redistribution and use in source and binary forms", "BSD"),
    ("This is free and unencumbered software", "Unlicense"),
    ("Python Software Foundation", "PSF-2.0"),
)
REPO = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class Spec:
    kind: str
    location: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.location}" if self.location else self.kind


def parse_spec(spec: str) -> Spec:
    kind, _, location = spec.partition(":")
    if kind not in KINDS:
        raise SourceError(
            f"corpus source {spec!r}: the kind must be one of {', '.join(KINDS)}"
            " (dir:FOLDER, git:REPO_FOLDER, packages[:NAME,NAME], github:OWNER/REPO[@REF])"
        )
    if kind in ("dir", "git"):
        if not location or not Path(location).expanduser().is_dir():
            raise SourceError(f"corpus source {spec!r}: {location or 'the location'} is not a folder")
        location = str(Path(location).expanduser().resolve())
    if kind == "github" and not REPO.match(location):
        raise SourceError(f"corpus source {spec!r}: expected github:OWNER/REPO or github:OWNER/REPO@REF")
    return Spec(kind, location)


def license_of(text: str) -> str | None:
    return next((name for phrase, name in LICENSE_PHRASES if phrase.lower() in text.lower()), None)


def _folder_license(root: Path) -> str | None:
    for name in LICENSE_FILES:
        if (root / name).is_file():
            return license_of((root / name).read_text(errors="replace")[:4000])
    return None


def _read_text(path: Path, max_bytes: int) -> str | None:
    """The file as text (bytes that are not UTF-8 replaced), or None when too big or binary."""
    try:
        if path.stat().st_size > max_bytes:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    if b"\x00" in data[:8192]:
        return None
    return data.decode("utf-8", errors="replace")


def _files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        parts = path.relative_to(root).parts
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts):
            yield path


def read_dir(root: Path, max_bytes: int, prefix: str = "dir") -> Iterator[Document]:
    license_hint = _folder_license(root)
    for path in _files(root):
        if (text := _read_text(path, max_bytes)) is not None:
            yield Document(f"{prefix}:{root.name}/{path.relative_to(root)}", text, license_hint)


def read_git(root: Path, max_bytes: int) -> Iterator[Document]:
    try:
        listed = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z"], capture_output=True, check=True, text=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SourceError(
            f"git:{root} is not a git repository ({exc}); use dir:{root} for a folder"
        ) from None
    license_hint = _folder_license(root)
    for name in sorted(filter(None, listed.split("\0"))):
        path = root / name
        if path.is_file() and (text := _read_text(path, max_bytes)) is not None:
            yield Document(f"git:{root.name}/{name}", text, license_hint)


def _distribution_license(dist) -> str | None:
    meta = dist.metadata
    declared = meta.get("License-Expression") or meta.get("License")
    if declared and len(declared) < 80:
        return declared.strip()
    classifiers = [
        c.rsplit(" :: ", 1)[-1] for c in meta.get_all("Classifier") or [] if c.startswith("License")
    ]
    return classifiers[0] if classifiers else license_of(declared or "")


def read_packages(names: str, max_bytes: int) -> Iterator[Document]:
    """The `.py` files each installed distribution lists in its RECORD, in name order."""
    from importlib.metadata import distributions

    wanted = {n.strip().lower().replace("_", "-") for n in names.split(",") if n.strip()}
    dists = {}
    for dist in distributions():
        name = (dist.metadata.get("Name") or "").lower().replace("_", "-")
        if name and name != "mlstack" and (not wanted or name in wanted):
            dists.setdefault(name, dist)
    if missing := wanted - set(dists):
        raise SourceError(f"corpus source packages:{names}: not installed: {', '.join(sorted(missing))}")
    for name in sorted(dists):
        dist = dists[name]
        license_hint = _distribution_license(dist)
        for file in sorted(dist.files or [], key=str):
            if file.suffix == ".py" and "__pycache__" not in file.parts:
                path = Path(dist.locate_file(file))
                if (text := _read_text(path, max_bytes)) is not None:
                    yield Document(f"packages:{name}/{file}", text, license_hint)


def read_github(
    location: str, settings: Settings, max_bytes: int, http_client: httpx.Client | None = None
) -> Iterator[Document]:
    """The repository's tarball (`GET /repos/{owner}/{repo}/tarball/{ref}`), read in memory."""
    from mlstack.sources import http

    repo, _, ref = location.partition("@")
    token = settings.sources.github_token
    headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    url = f"{settings.sources.github_api_url.rstrip('/')}/repos/{repo}/tarball/{ref}".rstrip("/")
    with http.client(http_client, headers) as client:
        response = http.get(client, url, None, settings.sources.rate_limit_wait_s)
    try:
        texts = _tar_texts(response.content, max_bytes)
    except tarfile.TarError as exc:
        raise SourceError(f"github:{location}: the archive from {url} is not a tarball ({exc})") from None
    license_hint = next((license_of(texts[n][:4000]) for n in LICENSE_FILES if n in texts), None)
    for name in sorted(texts):
        yield Document(f"github:{repo}/{name}", texts[name], license_hint)


def _tar_texts(content: bytes, max_bytes: int) -> dict[str, str]:
    """Relative path -> text of the archive's text files. Nothing is extracted to disk."""
    with tarfile.open(fileobj=io.BytesIO(content), mode="r:*") as archive:
        # GitHub wraps the tree in one folder named OWNER-REPO-SHA; paths are relative to it.
        members = [m for m in archive.getmembers() if m.isfile() and "/" in m.name]
        texts: dict[str, str] = {}
        for member in members:
            name = member.name.split("/", 1)[1]
            if member.size <= max_bytes and not any(p.startswith(".") for p in name.split("/")):
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                if b"\x00" not in data[:8192]:
                    texts[name] = data.decode("utf-8", errors="replace")
    return texts


def read(
    spec: Spec, settings: Settings, max_bytes: int, http_client: httpx.Client | None = None
) -> Iterator[Document]:
    if spec.kind == "dir":
        return read_dir(Path(spec.location), max_bytes)
    if spec.kind == "git":
        return read_git(Path(spec.location), max_bytes)
    if spec.kind == "packages":
        return read_packages(spec.location, max_bytes)
    return read_github(spec.location, settings, max_bytes, http_client)
