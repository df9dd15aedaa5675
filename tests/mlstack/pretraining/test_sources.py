"""Corpus sources: folders, git repositories, installed packages, GitHub archives (its API faked
at the transport, shaped as GitHub documents the tarball endpoint)."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from mlstack.pretraining import SourceError, sources
from mlstack.settings import get_settings

MIT = "MIT License\n\nPermission is hereby granted, free of charge, to any person\n"


def test_a_folder_gives_a_document_per_file_with_its_license_hint(tmp_path: Path) -> None:
    (tmp_path / "LICENSE").write_text(MIT)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("hidden\n")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" * 10)
    docs = list(sources.read(sources.parse_spec(f"dir:{tmp_path}"), get_settings(), 10_000))
    assert {d.path for d in docs} == {f"dir:{tmp_path.name}/LICENSE", f"dir:{tmp_path.name}/pkg/a.py"}
    assert {d.license for d in docs} == {"MIT"}
    assert all(len(d.hash) == 64 for d in docs)


def test_a_git_repository_gives_its_tracked_files_only(tmp_path: Path) -> None:
    (tmp_path / "tracked.py").write_text("y = 2\n")
    (tmp_path / "untracked.py").write_text("z = 3\n")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "add", "tracked.py"], check=True)
    docs = list(sources.read(sources.parse_spec(f"git:{tmp_path}"), get_settings(), 10_000))
    assert [d.path for d in docs] == [f"git:{tmp_path.name}/tracked.py"]


def test_installed_packages_give_their_python_sources_and_declared_license() -> None:
    docs = list(sources.read(sources.parse_spec("packages:click"), get_settings(), 1_000_000))
    assert len(docs) > 10 and all(d.path.startswith("packages:click/click/") for d in docs)
    assert all(d.path.endswith(".py") for d in docs)
    assert docs[0].license and "BSD" in docs[0].license


def _tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"octo-repo-abc1234/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def test_a_github_repository_comes_from_its_archive_with_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_SOURCES_GITHUB_TOKEN", "ghp_secret")
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/repos/octo/repo/tarball/v1":  # GitHub redirects to codeload
            return httpx.Response(
                302, headers={"location": "https://codeload.github.com/octo/repo/tar.gz/v1"}
            )
        body = _tarball({"LICENSE": MIT, "src/m.py": "def f():\n    return 1\n", ".github/ci.yml": "x"})
        return httpx.Response(200, content=body, headers={"content-type": "application/x-gzip"})

    client = httpx.Client(transport=httpx.MockTransport(handler), follow_redirects=True)
    spec = sources.parse_spec("github:octo/repo@v1")
    docs = list(sources.read(spec, get_settings(), 10_000, http_client=client))
    assert [d.path for d in docs] == ["github:octo/repo/LICENSE", "github:octo/repo/src/m.py"]
    assert docs[1].license == "MIT" and docs[1].text.startswith("def f")
    assert seen[0].headers["authorization"] == "Bearer ghp_secret"


def test_a_github_answer_that_is_no_tarball_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200, content=b"<html>")))
    with pytest.raises(SourceError, match=r"github:octo/repo: the archive from .* is not a tarball"):
        list(sources.read(sources.parse_spec("github:octo/repo"), get_settings(), 10_000, http_client=client))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ftp:x", "the kind must be one of dir, git, packages, github"),
        ("dir:/no/such/folder", "is not a folder"),
        ("github:not-a-repo", "expected github:OWNER/REPO"),
    ],
)
def test_a_bad_spec_says_what_is_expected(spec: str, message: str) -> None:
    with pytest.raises(SourceError, match=message):
        sources.parse_spec(spec)


def test_a_package_that_is_not_installed_is_named() -> None:
    with pytest.raises(SourceError, match="not installed: no-such-package"):
        list(sources.read(sources.parse_spec("packages:click,no-such-package"), get_settings(), 10_000))
