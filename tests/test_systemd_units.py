"""systemd/: the unit verifies cleanly, is hardened as documented, and the sysusers/tmpfiles files
are valid and create what the daemon needs."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from reautod.config import SECRET_NAMES, Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SYSTEMD_DIR = REPO_ROOT / "systemd"
UNIT = SYSTEMD_DIR / "reautod.service"
BACKUP_UNIT = SYSTEMD_DIR / "reautod-backup.service"
BACKUP_TIMER = SYSTEMD_DIR / "reautod-backup.timer"
SOCKET = SYSTEMD_DIR / "reautod.socket"
SYSUSERS = SYSTEMD_DIR / "reautod.sysusers"
TMPFILES = SYSTEMD_DIR / "reautod.tmpfiles"
CONFIG_DOC = REPO_ROOT / "docs" / "configuration.md"

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze not installed")
# Above this exposure score `systemd-analyze security` calls a unit MEDIUM/EXPOSED.
MAX_EXPOSURE = 3.0


# --- unit file parsing --------------------------------------------------------------------------


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as ordered (key, value) lists; keys may repeat."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        if current is None or "=" not in line or line.endswith("\\"):
            raise ValueError(f"line {number}: not a key=value inside a section: {raw!r}")
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


def values(section: list[tuple[str, str]], key: str) -> list[str]:
    return [v for k, v in section if k == key]


def one(section: list[tuple[str, str]], key: str) -> str:
    found = values(section, key)
    if len(found) != 1:
        raise AssertionError(f"{key}= appears {len(found)} times, expected once")
    return found[0]


def seconds(value: str) -> float:
    """A systemd time span with the units the unit file uses (s, min, plain seconds)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(s|sec|min|m)?", value)
    if match is None:
        raise ValueError(f"unsupported time span {value!r}")
    number = float(match.group(1))
    return number * 60 if match.group(2) in ("min", "m") else number


@pytest.fixture(scope="module")
def service() -> list[tuple[str, str]]:
    return parse_unit(UNIT.read_text())["Service"]


def test_unit_is_a_notify_service_with_watchdog_and_restart(service: list[tuple[str, str]]) -> None:
    assert one(service, "Type") == "notify"
    assert one(service, "NotifyAccess") == "main"
    assert seconds(one(service, "WatchdogSec")) == 30
    assert one(service, "Restart") == "on-failure"
    assert one(service, "User") == one(service, "Group") == "reautod"
    assert one(service, "ExecStart") == "/usr/bin/reautod --config /etc/reautod/reautod.toml"
    assert one(service, "ExecReload") == "/bin/kill -HUP $MAINPID"
    for key in ("RuntimeDirectory", "StateDirectory", "ConfigurationDirectory"):
        assert one(service, key) == "reautod"
    assert one(service, "UMask") == "0007"  # the control socket is created 0660


def test_stop_timeout_outlasts_the_drain_grace_period(service: list[tuple[str, str]]) -> None:
    grace = Settings.model_fields["shutdown_grace_s"].default
    assert seconds(one(service, "TimeoutStopSec")) >= grace + 30


def test_every_secret_is_a_credential_that_may_be_missing(service: list[tuple[str, str]]) -> None:
    loaded = dict(v.split(":", 1) for v in values(service, "LoadCredential"))
    fallbacks = dict(v.split(":", 1) for v in values(service, "SetCredential"))
    assert set(loaded) == set(SECRET_NAMES)
    for name in SECRET_NAMES:
        assert loaded[name] == f"/etc/reautod/credentials/{name}"
        # The SetCredential= default makes a missing file non-fatal; it must hold no secret
        # (config.load_secrets treats a blank credential as absent).
        assert fallbacks[name] in ("\\n", " "), fallbacks[name]


def test_hardening_is_on_and_deliberate_gaps_stay_documented(service: list[tuple[str, str]]) -> None:
    expected = {
        "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
        "NoNewPrivileges": "yes", "ProtectKernelTunables": "yes", "ProtectKernelModules": "yes",
        "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes", "RestrictNamespaces": "yes",
        "LockPersonality": "yes", "SystemCallArchitectures": "native", "DevicePolicy": "closed",
        "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6 AF_NETLINK",
    }
    for key, value in expected.items():
        assert one(service, key) == value, key
    assert "@system-service" in values(service, "SystemCallFilter")
    # JIT in onnxruntime/llama.cpp, and SO_PEERCRED checks: these two must stay off.
    assert values(service, "MemoryDenyWriteExecute") == []
    assert values(service, "PrivateUsers") == []
    text = UNIT.read_text()
    assert "MemoryDenyWriteExecute= is deliberately off" in text
    assert "PrivateUsers= is deliberately off" in text
    devices = [v.split()[0] for v in values(service, "DeviceAllow")]
    assert devices and all("nvidia" in d for d in devices), devices
    assert {"/dev/nvidiactl", "/dev/nvidia-uvm"} <= set(devices)


def test_unit_parser_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="line 2"):
        parse_unit("[Service]\nthis is not a setting\n")


# --- systemd-analyze ----------------------------------------------------------------------------


def verifiable_copy(tmp_path: Path, text: str, name: str = UNIT.name) -> Path:
    """The unit with ExecStart pointing at a binary that exists here.

    `systemd-analyze verify` fails a unit whose ExecStart binary is absent, and /usr/bin/reautod
    only exists once the package is installed (tests/packaging verifies the installed units as
    shipped); every other line is verified as shipped.
    """
    true_bin = shutil.which("true") or "/bin/true"
    copy = tmp_path / name
    text = re.sub(r"^ExecStart=/usr/bin/(reautod|reautoctl) ", f"ExecStart={true_bin} ", text,
                  count=1, flags=re.MULTILINE)
    copy.write_text(text)
    return copy


def verify_problems(unit: Path) -> list[str]:
    """Lines `systemd-analyze verify` prints about this unit file (empty when clean)."""
    assert SYSTEMD_ANALYZE is not None
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    problems = [line for line in lines if unit.name in line or str(unit.parent) in line]
    if result.returncode != 0:
        problems.append(f"exit status {result.returncode}")
    return problems


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    assert verify_problems(verifiable_copy(tmp_path, UNIT.read_text())) == []


@needs_analyze
def test_verify_check_catches_bad_settings(tmp_path: Path) -> None:
    broken = UNIT.read_text().replace("[Service]\n", "[Service]\nProtectSystm=strict\nUMask=99999\n")
    problems = verify_problems(verifiable_copy(tmp_path, broken))
    assert any("ProtectSystm" in p for p in problems), problems
    assert any("UMask" in p or "99999" in p for p in problems), problems


def exposure_score(tmp_path: Path, unit: Path = UNIT) -> tuple[float, str] | None:
    """(score, rating) from `systemd-analyze security --offline=yes`, None if unsupported."""
    assert SYSTEMD_ANALYZE is not None
    copy = verifiable_copy(tmp_path, unit.read_text(), unit.name)
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=yes", str(copy)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    if "--offline" in result.stderr and result.returncode != 0:
        return None  # systemd < 250
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+) (\w+)", result.stdout)
    assert match is not None, result.stdout + result.stderr
    return float(match.group(1)), match.group(2)


def systemd_version() -> int | None:
    assert SYSTEMD_ANALYZE is not None
    out = subprocess.run([SYSTEMD_ANALYZE, "--version"], capture_output=True, text=True,
                         timeout=30, check=False).stdout
    match = re.match(r"systemd (\d+)", out)
    return int(match.group(1)) if match else None


@needs_analyze
def test_security_exposure_is_low_and_documented(tmp_path: Path) -> None:
    scored = exposure_score(tmp_path)
    if scored is None:
        pytest.skip("this systemd-analyze has no `security --offline`")
    score, rating = scored
    print(f"systemd-analyze security exposure: {score} {rating}")
    assert score <= MAX_EXPOSURE, (score, rating)
    documented = re.search(
        r"exposure level (\d+\.\d+) \((\w+)\) with systemd (\d+)", CONFIG_DOC.read_text()
    )
    assert documented is not None, "docs/configuration.md must quote the exposure score"
    if systemd_version() == int(documented.group(3)):
        assert (float(documented.group(1)), documented.group(2)) == (score, rating)


# --- sysusers.d and tmpfiles.d ------------------------------------------------------------------

NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,30}$")


@dataclass(frozen=True)
class SysusersLine:
    kind: str
    name: str
    id: str
    gecos: str
    home: str
    shell: str


def parse_sysusers(text: str) -> list[SysusersLine]:
    """sysusers.d(5) lines, validated: type, name, id, and absolute home/shell."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = shlex.split(raw)
        if fields[0] not in ("u", "g", "m", "r") or not 2 <= len(fields) <= 6:
            raise ValueError(f"line {number}: bad sysusers line {raw!r}")
        fields += ["-"] * (6 - len(fields))
        kind, name, ident, gecos, home, shell = fields
        if not NAME.match(name):
            raise ValueError(f"line {number}: bad user/group name {name!r}")
        if kind == "m" and not NAME.match(ident):
            raise ValueError(f"line {number}: bad group name {ident!r}")
        if kind in ("u", "g") and not re.fullmatch(r"-|\d+(:\d+)?|/\S+", ident):
            raise ValueError(f"line {number}: bad id {ident!r}")
        for path in (home, shell):
            if path != "-" and not path.startswith("/"):
                raise ValueError(f"line {number}: {path!r} is not absolute")
        entries.append(SysusersLine(kind, name, ident, gecos, home, shell))
    return entries


@dataclass(frozen=True)
class TmpfilesLine:
    kind: str
    path: str
    mode: str
    user: str
    group: str


TMPFILES_TYPES = set("fFwdDevqQpLcbCxXrRzZtThHaA")


def parse_tmpfiles(text: str) -> list[TmpfilesLine]:
    """tmpfiles.d(5) lines, validated: type, absolute path, octal mode, user and group."""
    entries = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        fields = raw.split()
        if len(fields) < 2 or fields[0].rstrip("!+-=~^") not in TMPFILES_TYPES:
            raise ValueError(f"line {number}: bad tmpfiles line {raw!r}")
        fields += ["-"] * (7 - len(fields))
        kind, path, mode, user, group = fields[:5]
        if not path.startswith("/"):
            raise ValueError(f"line {number}: {path!r} is not absolute")
        if not re.fullmatch(r"-|~?0?[0-7]{3,4}", mode):
            raise ValueError(f"line {number}: bad mode {mode!r}")
        for owner in (user, group):
            if owner != "-" and not NAME.match(owner):
                raise ValueError(f"line {number}: bad owner {owner!r}")
        entries.append(TmpfilesLine(kind, path, mode, user, group))
    return entries


def test_sysusers_declares_the_reautod_user_and_group() -> None:
    entries = parse_sysusers(SYSUSERS.read_text())
    assert any(e.kind == "g" and e.name == "reautod" for e in entries)
    user = next(e for e in entries if e.kind == "u" and e.name == "reautod")
    assert user.home == "/var/lib/reautod"
    assert user.shell == "/usr/sbin/nologin"


def test_tmpfiles_creates_private_dirs_owned_by_known_accounts() -> None:
    entries = parse_tmpfiles(TMPFILES.read_text())
    declared = {e.name for e in parse_sysusers(SYSUSERS.read_text()) if e.kind in ("u", "g")}
    by_path = {e.path: e for e in entries}
    for path in ("/var/lib/reautod", "/var/lib/reautod/models", "/etc/reautod/credentials"):
        assert by_path[path].kind == "d"
        assert by_path[path].mode == "0750"  # nothing of ours is world-readable
    for entry in entries:
        assert {entry.user, entry.group} <= declared | {"root", "-"}, entry


@pytest.mark.parametrize(
    ("parser", "line"),
    [
        (parse_sysusers, "x reautod - - - -"),
        (parse_sysusers, "u Bad.Name - - - -"),
        (parse_sysusers, "u reautod - x relative/home -"),
        (parse_tmpfiles, "d relative/path 0750 reautod reautod -"),
        (parse_tmpfiles, "d /var/lib/x 0999 reautod reautod -"),
        (parse_tmpfiles, "y /var/lib/x 0750 reautod reautod -"),
    ],
)
def test_validators_reject_bad_lines(parser: object, line: str) -> None:
    assert callable(parser)
    with pytest.raises(ValueError, match="line 1"):
        parser(line)


@pytest.mark.skipif(
    shutil.which("systemd-sysusers") is None or shutil.which("systemd-tmpfiles") is None,
    reason="systemd-sysusers/systemd-tmpfiles not installed",
)
def test_sysusers_and_tmpfiles_apply_to_an_empty_root(tmp_path: Path) -> None:
    """The real tools, pointed at a scratch root, create the account and the directories."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    shutil.copy("/etc/group", root / "etc" / "group")  # `m reautod video` needs group video
    for name in ("passwd", "shadow", "gshadow"):
        (root / "etc" / name).touch()
    subprocess.run(["systemd-sysusers", f"--root={root}", str(SYSUSERS)], check=True,
                   capture_output=True, timeout=60)
    passwd = (root / "etc" / "passwd").read_text()
    entry = next(line.split(":") for line in passwd.splitlines() if line.startswith("reautod:"))
    uid, gid = int(entry[2]), int(entry[3])
    assert 0 < uid < 1000  # a system account
    result = subprocess.run(["systemd-tmpfiles", f"--root={root}", "--create", str(TMPFILES)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    models = (root / "var/lib/reautod/models").stat()
    assert (models.st_mode & 0o777) == 0o750
    if (root / "var/lib/reautod").stat().st_uid == uid:  # chown needs root; modes do not
        assert (models.st_uid, models.st_gid) == (uid, gid)
        assert (root / "etc/reautod/credentials").stat().st_gid == gid


# --- the backup service and its timer -----------------------------------------------------------


def test_backup_service_writes_only_the_directory_tmpfiles_creates() -> None:
    service = parse_unit(BACKUP_UNIT.read_text())["Service"]
    assert one(service, "Type") == "oneshot"
    assert one(service, "User") == one(service, "Group") == "reautod"
    command = shlex.split(one(service, "ExecStart"))
    assert command[:4] == ["/usr/bin/reautoctl", "--config", "/etc/reautod/reautod.toml", "backup"]
    backup_dir = command[command.index("--dir") + 1]
    assert command[4] == "create" and int(command[command.index("--keep") + 1]) >= 1
    assert values(service, "ReadWritePaths") == [backup_dir]
    assert one(service, "ProtectSystem") == "strict"
    # Same state directory as the daemon, so reautoctl resolves the same SQLite file.
    assert one(service, "StateDirectory") == "reautod"
    made = {e.path: e for e in parse_tmpfiles(TMPFILES.read_text())}
    assert made[backup_dir].user == "reautod" and made[backup_dir].mode == "0750"
    assert "LoadCredential" not in {k for k, _ in service}  # credentials are never backed up


def test_backup_timer_is_daily_and_catches_up() -> None:
    sections = parse_unit(BACKUP_TIMER.read_text())
    assert one(sections["Timer"], "OnCalendar").startswith("*-*-* ")
    assert one(sections["Timer"], "Persistent") == "true"
    assert one(sections["Install"], "WantedBy") == "timers.target"


@needs_analyze
def test_backup_units_verify_cleanly_and_are_hardened(tmp_path: Path) -> None:
    service = verifiable_copy(tmp_path, BACKUP_UNIT.read_text(), BACKUP_UNIT.name)
    timer = tmp_path / BACKUP_TIMER.name
    timer.write_text(BACKUP_TIMER.read_text())
    assert verify_problems(service) == []
    assert verify_problems(timer) == []
    scored = exposure_score(tmp_path, BACKUP_UNIT)
    if scored is not None:
        assert scored[0] <= MAX_EXPOSURE, scored


def test_the_socket_unit_holds_the_default_http_port_for_the_service() -> None:
    """The daemon takes its HTTP socket from it (reautod.api.activation), so it must listen
    where [http] does by default; the service pulls it in."""
    sections = parse_unit(SOCKET.read_text())
    http = Settings().http
    assert one(sections["Socket"], "ListenStream") == f"{http.host}:{http.port}"
    assert int(one(sections["Socket"], "Backlog")) >= 500  # calls.max_concurrent's maximum
    assert one(sections["Install"], "WantedBy") == "sockets.target"
    service = parse_unit(UNIT.read_text())["Unit"]
    assert "reautod.socket" in values(service, "Wants")
    assert "reautod.socket" in values(service, "After")


@needs_analyze
def test_the_socket_unit_verifies_cleanly(tmp_path: Path) -> None:
    service = verifiable_copy(tmp_path, UNIT.read_text())
    socket_unit = tmp_path / SOCKET.name
    socket_unit.write_text(SOCKET.read_text())
    assert verify_problems(socket_unit) == []
    assert verify_problems(service) == []
