"""The .deb, built by packaging/build-deb, installed for real into a Debian 12 chroot.

One root per module walks the life of an installation: install the previous version, give it
state (a database one migration behind, a recording, an edited conffile), upgrade to this build
(which must migrate and keep everything), check what is installed, refuse an upgrade whose
migration cannot run, then remove (state kept) and purge (state gone).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reautod.store.schema import head_revision
from tests.packaging.debroot import Root, base_root, depends_names

# Minutes, not seconds: the first test here builds the package (session fixture), and lintian
# reads all of its ~40,000 files.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

SITE_EDIT = "# site edit: must survive the upgrade\n"
CONFIG = "/etc/reautod/reautod.toml"
UNITS = ("reautod.service", "reautod.socket", "reautod-backup.service", "reautod-backup.timer")
MARKER_SQL = "CREATE TABLE site_marker (note TEXT); INSERT INTO site_marker VALUES ('kept');"


@dataclass
class Installed:
    root: Root
    deb: Path
    previous_revision: str
    dpkg_output: str

    def query(self, sql: str) -> str:
        """Rows of a query on the installed SQLite database, read with the package's Python."""
        code = f"import sqlite3; print(sqlite3.connect('/var/lib/reautod/reautod.db').execute({sql!r}).fetchall())"
        return self.root.run("/opt/reautod/bin/python", "-c", code).stdout.strip()

    def ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.root.run("runuser", "-u", "reautod", "--", "reautoctl", "--config", CONFIG,
                             *args, check=check)


@pytest.fixture(scope="module")
def installed(
    built_deb: Path, previous_deb: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    base = base_root(depends_names(built_deb))
    root = Root.copy_of(base, tmp_path_factory.mktemp("chroot") / "root")
    try:
        shutil.copy(previous_deb, root.file("/tmp/previous.deb"))
        shutil.copy(built_deb, root.file("/tmp/current.deb"))
        root.run("dpkg", "-i", "/tmp/previous.deb")
        # The operator's state: a schema one revision behind, a row of theirs, a recording, and
        # an edited conffile.
        installed = Installed(root, built_deb, "", "")
        history = json.loads(installed.ctl("--json", "db", "history").stdout)
        behind = next(r["down_revision"] for r in history if r["head"])
        installed.ctl("db", "upgrade", behind)
        installed.previous_revision = behind
        root.run("runuser", "-u", "reautod", "--", "/opt/reautod/bin/python", "-c",
                 f"import sqlite3; sqlite3.connect('/var/lib/reautod/reautod.db')"
                 f".executescript({MARKER_SQL!r})")
        recording = root.file("/var/lib/reautod/recordings/2026/call/inbound.wav")
        recording.parent.mkdir(parents=True)
        recording.write_bytes(b"RIFF....WAVE")
        with root.file(CONFIG).open("a") as f:
            f.write(SITE_EDIT)
        installed.dpkg_output = root.run("dpkg", "-i", "/tmp/current.deb").stdout
        yield installed
    finally:
        root.remove()


def test_files_links_and_the_venv_on_debians_python(installed: Installed) -> None:
    root = installed.root
    for name in ("reautod", "reautoctl", "reauto-tui"):
        link = root.file(f"/usr/bin/{name}")
        assert link.is_symlink() and str(link.readlink()) == f"/opt/reautod/bin/{name}"
    assert str(root.file("/opt/reautod/bin/python").readlink()).startswith("/usr/bin/python3.11")
    assert root.file("/opt/reautod/VARIANT").read_text().strip() == "cpu"
    for unit in UNITS:
        assert root.file(f"/lib/systemd/system/{unit}").is_file(), unit
    assert root.file("/usr/lib/sysusers.d/reautod.conf").is_file()
    assert root.file("/usr/lib/tmpfiles.d/reautod.conf").is_file()
    conffiles = root.run("dpkg-query", "-W", "-f=${Conffiles}", "reautod").stdout
    assert CONFIG in conffiles
    # Byte code names the installed paths (compiled at build time, read-only at run time).
    version = root.run("/opt/reautod/bin/python", "-c",
                       "import reautod.config as c; print(c.__cached__)").stdout
    assert version.strip().startswith("/opt/reautod/lib/python3.11/site-packages/reautod/")


def test_the_account_and_private_directories(installed: Installed) -> None:
    root = installed.root
    passwd = root.file("/etc/passwd").read_text()
    entry = next(line.split(":") for line in passwd.splitlines() if line.startswith("reautod:"))
    assert entry[5:] == ["/var/lib/reautod", "/usr/sbin/nologin"]
    uid, gid = int(entry[2]), int(entry[3])
    assert 0 < uid < 1000
    for path, owner, mode in [
        ("/etc/reautod", (0, gid), 0o750),
        ("/etc/reautod/credentials", (0, gid), 0o750),
        (CONFIG, (0, gid), 0o640),
        ("/var/lib/reautod", (uid, gid), 0o750),
        ("/var/backups/reautod", (uid, gid), 0o750),
    ]:
        st = root.file(path).stat()
        assert ((st.st_uid, st.st_gid), st.st_mode & 0o777) == (owner, mode), path


def test_units_are_enabled_not_started_and_verify_cleanly(installed: Installed) -> None:
    root = installed.root
    assert root.file("/etc/systemd/system/multi-user.target.wants/reautod.service").is_symlink()
    assert root.file("/etc/systemd/system/sockets.target.wants/reautod.socket").is_symlink()
    assert root.file("/etc/systemd/system/timers.target.wants/reautod-backup.timer").is_symlink()
    result = root.run("systemd-analyze", "verify", "--man=no",
                      *(f"/lib/systemd/system/{u}" for u in UNITS), check=False)
    problems = [line for line in (result.stdout + result.stderr).splitlines()
                if "reautod" in line]
    assert result.returncode == 0 and problems == [], result.stdout + result.stderr


def test_check_config_runs_the_installed_daemon(installed: Installed) -> None:
    """The packaged config says prod, so an unconfigured box is refused with every reason."""
    refused = installed.root.run("reautod", "--config", CONFIG, "--check-config", check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert 'environment = "prod" refuses' in refused.stderr
    assert "secrets.twilio_auth_token" in refused.stderr
    allowed = installed.root.run("reautod", "--config", CONFIG, "--check-config",
                                 env={"REAUTOD_ENVIRONMENT": "dev"})
    assert "configuration OK" in allowed.stdout


def test_upgrade_migrated_the_schema_and_kept_data_and_config(installed: Installed) -> None:
    assert installed.previous_revision != head_revision()
    current = installed.ctl("--json", "db", "current").stdout
    assert f'"current": "{head_revision()}"' in current
    assert installed.query("SELECT note FROM site_marker") == "[('kept',)]"
    assert installed.root.file("/var/lib/reautod/recordings/2026/call/inbound.wav").exists()
    assert installed.root.file(CONFIG).read_text().endswith(SITE_EDIT)


def test_an_upgrade_whose_migration_fails_stops_with_the_command(installed: Installed) -> None:
    """The installed postinst, as dpkg runs it on an upgrade, against an unreachable database."""
    root = installed.root
    config = root.file(CONFIG)
    kept = config.read_text()
    config.write_text('database_url = "postgresql+psycopg://reautod@127.0.0.1:1/reautod"\n' + kept)
    postinst = ("/var/lib/dpkg/info/reautod.postinst", "configure", "0.1.0~previous")
    try:
        failed = root.run(*postinst, check=False, env={"DPKG_MAINTSCRIPT_PACKAGE": "reautod"})
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "refusing to finish the upgrade against an old schema" in failed.stderr
        assert ("sudo -u reautod reautoctl --config /etc/reautod/reautod.toml db upgrade && "
                "sudo dpkg --configure -a") in failed.stderr
        assert "127.0.0.1:1" in failed.stderr  # the reason, from reautoctl
    finally:
        config.write_text(kept)
    again = root.run(*postinst, env={"DPKG_MAINTSCRIPT_PACKAGE": "reautod"})
    assert again.returncode == 0


def test_remove_keeps_state_and_purge_deletes_it(installed: Installed) -> None:
    """Last in the module: it uninstalls."""
    root = installed.root
    root.run("dpkg", "--remove", "reautod")
    assert root.file("/var/lib/reautod/reautod.db").exists()
    assert root.file(CONFIG).exists()
    assert not root.file("/opt/reautod/bin/reautod").exists()
    root.run("dpkg", "--purge", "reautod")
    assert not root.file("/var/lib/reautod").exists()
    assert not root.file(CONFIG).exists()
    assert not root.file("/etc/reautod/credentials").exists()
    assert root.file("/var/backups/reautod").exists()  # backups outlive the install


@pytest.mark.skipif(shutil.which("lintian") is None, reason="lintian not installed")
def test_lintian_is_clean_but_for_justified_overrides(built_deb: Path) -> None:
    result = subprocess.run(["lintian", "--no-tag-display-limit", "--suppress-tags",
                             "unused-override", str(built_deb)],
                            capture_output=True, text=True, timeout=1200, check=False)
    problems = [line for line in result.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert problems == [], result.stdout[-4000:]
