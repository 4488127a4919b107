"""Where the image and the dev tools come from: the lock files name no local folder, the
Dockerfile's base is an exact release, and the base rootfs is fetched over https and checked
against Debian's archive keyring (docs/security.md, "Network and the image")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("lock", ["requirements.lock", "requirements-dev.lock"])
def test_lock_files_install_from_the_index_only(lock: str) -> None:
    options = [line for line in (ROOT / lock).read_text().splitlines() if line.startswith("--")]
    assert options == [], f"{lock} carries pip options a fresh machine cannot follow: {options}"


def test_lock_script_never_writes_this_machines_pip_settings_into_the_locks() -> None:
    script = (ROOT / "hack/lock.sh").read_text()
    assert "--no-emit-find-links" in script and "--no-emit-index-url" in script


def test_dockerfile_base_is_an_exact_release_not_a_moving_tag() -> None:
    base = re.search(r"^ARG BASE=(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert base, "the Dockerfile has no default BASE"
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base.group(1)), base.group(1)


def test_the_base_rootfs_is_fetched_over_https_and_checked_against_the_archive_keyring() -> None:
    script = (ROOT / "hack/image-build.sh").read_text()
    debootstrap = re.search(r"^\s*debootstrap .*?(?<!\\)\n", script, re.M | re.S)
    assert debootstrap, "hack/image-build.sh no longer runs debootstrap"
    command = debootstrap.group(0)
    assert "--keyring=" in command and "--force-check-gpg" in command, command
    assert "http://" not in script, "a plain http mirror"
    assert "snapshot.debian.org/archive/debian/$snapshot" in script
