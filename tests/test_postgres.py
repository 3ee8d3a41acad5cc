"""The tests' throwaway PostgreSQL server: found where Debian puts it, never silently missing in CI."""

from __future__ import annotations

import pytest
from postgres import find_bin_dir, require_bin_dir


def _fake_install(root, major: int):
    bin_dir = root / str(major) / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("initdb", "pg_ctl"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


def test_debian_layout_is_found_off_path_newest_first(tmp_path):
    # Debian's server binaries live in /usr/lib/postgresql/<major>/bin, not on PATH: the newest is used.
    _fake_install(tmp_path, 9)
    newest = _fake_install(tmp_path, 16)
    assert (
        find_bin_dir(search_path=str(tmp_path / "empty"), debian_glob=str(tmp_path / "*" / "bin")) == newest
    )


def test_missing_server_skips_on_a_laptop(tmp_path, monkeypatch):
    # Without initdb and pg_ctl, and outside CI, the PostgreSQL tests are skipped with the reason.
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        require_bin_dir(search_path=str(tmp_path), debian_glob=str(tmp_path / "*" / "bin"))


def test_missing_server_fails_in_ci(tmp_path, monkeypatch):
    # In CI (CI=true) a missing PostgreSQL is a failure, so its tests cannot pass by being skipped.
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        require_bin_dir(search_path=str(tmp_path), debian_glob=str(tmp_path / "*" / "bin"))
