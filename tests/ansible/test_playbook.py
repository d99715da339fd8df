"""ansible/: lint, syntax check, a real apply into a Debian 12 chroot, idempotence, check mode,
and the GPU check's clear failures.

The apply runs the playbook inside the chroot with the `local` connection (ansible-core has no
chroot connection; community.general's would need Galaxy, which is not reachable here): the
tools venv, the repository and the work directory are bind-mounted at their own paths. Skipped
there, by tag: `service` (tasks that need a running systemd, PostgreSQL, Redis: a chroot has no
init), `models` (downloads from the model hub), `acme` (Let's Encrypt) and `grafana` (Grafana's
own APT repository). Everything else (the .deb, config and credentials from a real Ansible
Vault, PostgreSQL, Redis, nginx with its certificate, nftables, Prometheus with our rules and the
node exporter, the backup drop-ins) is applied for real, then applied again, which must change
nothing, then run with --check --diff, which must report nothing.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.packaging.debroot import Root, base_root, cache_dir, depends_names
from tests.packaging.tools import deploy_tools

# Minutes, not seconds: a real apply installs PostgreSQL, Redis, nginx, Prometheus and the .deb
# (built first when tests/packaging has not run in this session).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_DIR = REPO_ROOT / "ansible"
SKIP_IN_CHROOT = "service,models,acme,grafana,nvidia_repo"
VAULT = {
    "vault_reautod_db_password": "db pass/with:odd@chars",
    "vault_reautod_redis_password": "r3dis-Secret-value-0123456789abcdef",
    "vault_reautod_twilio_auth_token": "0123456789abcdef0123456789abcdef",
    "vault_reautod_elevenlabs_api_key": "",
    "vault_reautod_jwt_secret": "j" * 48,
    # a key ring line: base64 of 32 bytes (prod refuses anything else, see reautod/environment.py)
    "vault_reautod_encryption_key": "ZW5jcnlwdGlvbi1rZXktZm9yLXRoZS1wbGF5Ym9vayE=",
    "vault_reautod_erasure_salt": "",
    "vault_reautod_tls_certificate": "",
    "vault_reautod_tls_private_key": "",
    "vault_reautod_grafana_admin_password": "grafana-admin-secret",
}


def ansible(tools: Path, *args: str, cwd: Path = ANSIBLE_DIR) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(tools / args[0]), *args[1:]], cwd=cwd, capture_output=True,
                          text=True, timeout=900, check=False,
                          env={"PATH": f"{tools}:/usr/bin:/bin", "HOME": str(Path.home()),
                               "ANSIBLE_NOCOLOR": "1", "LANG": "C.UTF-8"})


@pytest.fixture(scope="module")
def tools() -> Path:
    return deploy_tools()


def test_ansible_lint_is_clean_at_the_production_profile(tools: Path) -> None:
    result = ansible(tools, "ansible-lint", "--offline", "--nocolor")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "criteria was 'production'" in result.stdout + result.stderr


def test_syntax_check(tools: Path) -> None:
    result = ansible(tools, "ansible-playbook", "--syntax-check", "site.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def recap(output: str) -> dict[str, int]:
    """The PLAY RECAP counters of the single host."""
    match = re.search(r"^\S+\s*:\s*(ok=.*)$", output.split("PLAY RECAP")[-1], re.MULTILINE)
    assert match is not None, output[-3000:]
    return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(1))}


@dataclass
class Target:
    root: Root
    work: Path
    tools: Path
    deb: Path
    first: subprocess.CompletedProcess[str]

    def playbook(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        script = (f"cd {ANSIBLE_DIR} && exec {self.tools}/ansible-playbook -i {self.work}/inventory "
                  f"--vault-password-file {self.work}/vault-pass site.yml " + " ".join(args))
        binds = [(self.tools.parent, str(self.tools.parent)), (REPO_ROOT, str(REPO_ROOT)),
                 (self.work, str(self.work)), (self.deb.parent, str(self.deb.parent)),
                 (apt_archives(), "/var/cache/apt/archives")]
        return self.root.run("sh", "-c", script, check=check, binds=binds, timeout=1500,
                             env={"ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})


def apt_archives() -> Path:
    """Downloaded .debs kept between runs, so a re-run installs without the mirror's bandwidth."""
    path = cache_dir() / "apt-archives"
    (path / "partial").mkdir(parents=True, exist_ok=True)
    return path


def write_inventory(work: Path, deb: Path, tools: Path) -> None:
    group_vars = work / "inventory" / "group_vars" / "reautod"
    group_vars.mkdir(parents=True)
    (work / "inventory" / "hosts.yml").write_text(yaml.safe_dump({"reautod": {"hosts": {
        "testbox": {"ansible_connection": "local", "ansible_python_interpreter": "/usr/bin/python3",
                    # root already; the minimal root has no sudo until the base role adds it
                    "ansible_become_method": "su"},
    }}}))
    example = yaml.safe_load((ANSIBLE_DIR / "inventory/example/group_vars/reautod/main.yml").read_text())
    example.update({
        "reautod_variant": "cpu", "reautod_deb": str(deb), "reautod_models_profile": "test",
        "reautod_tls_mode": "selfsigned", "reautod_public_hostname": "voice.test.invalid",
    })
    (group_vars / "main.yml").write_text(yaml.safe_dump(example))
    (work / "vault-pass").write_text("test vault password\n")
    vault = group_vars / "vault.yml"
    vault.write_text(yaml.safe_dump(VAULT))
    encrypted = ansible(tools, "ansible-vault", "encrypt", "--vault-password-file",
                        str(work / "vault-pass"), str(vault))
    assert encrypted.returncode == 0, encrypted.stderr
    assert vault.read_text().startswith("$ANSIBLE_VAULT;")


@pytest.fixture(scope="module")
def target(
    tools: Path, built_deb: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    base = base_root(depends_names(built_deb))
    work = tmp_path_factory.mktemp("ansible")
    write_inventory(work, built_deb, tools)
    root = Root.copy_of(base, work / "root")
    try:
        applied = Target(root, work, tools, built_deb, subprocess.CompletedProcess([], 0))
        applied.first = applied.playbook("--skip-tags", SKIP_IN_CHROOT)
        yield applied
    finally:
        root.remove()


def test_first_apply_succeeds_and_changes_the_box(target: Target) -> None:
    assert target.first.returncode == 0, target.first.stdout[-6000:] + target.first.stderr[-2000:]
    counts = recap(target.first.stdout)
    assert counts["failed"] == 0 and counts["changed"] > 10, counts


def test_what_the_apply_put_on_the_box(target: Target) -> None:
    root = target.root
    status = root.run("dpkg-query", "-W", "-f=${Status}", "reautod", "postgresql", "redis-server",
                      "nginx", "nftables", "prometheus", "prometheus-node-exporter").stdout
    assert status.count("install ok installed") == 7, status
    config = root.file("/etc/reautod/reautod.toml").read_text()
    assert 'environment = "prod"' in config
    # The vault's password reaches the URL, percent-encoded.
    assert "reautod:db%20pass/with%3Aodd%40chars@127.0.0.1:5432/reautod" in config
    assert root.file("/etc/reautod/credentials/jwt_secret").read_text() == VAULT[
        "vault_reautod_jwt_secret"] + "\n"
    assert not root.file("/etc/reautod/credentials/elevenlabs_api_key").exists()
    assert oct(root.file("/etc/reautod/credentials/encryption_key").stat().st_mode & 0o777) == "0o640"
    assert f"requirepass {VAULT['vault_reautod_redis_password']}" in root.file(
        "/etc/redis/redis.conf").read_text()
    assert "location /twilio/" in root.file("/etc/nginx/sites-available/reautod.conf").read_text()
    enabled = root.file("/etc/nginx/sites-enabled/reautod.conf")
    assert str(enabled.readlink()) == "/etc/nginx/sites-available/reautod.conf"
    assert not root.file("/etc/nginx/sites-enabled/default").is_symlink()
    assert root.file("/etc/ssl/reautod/privkey.pem").stat().st_mode & 0o077 == 0
    assert "tcp dport { 80, 443 } accept" in root.file("/etc/nftables.conf").read_text()
    rules = root.file("/etc/prometheus/rules/reautod.yml").read_text()
    assert rules == (REPO_ROOT / "docs/monitoring/alerts.yml").read_text()
    assert "127.0.0.1:9464" in root.file("/etc/prometheus/prometheus.yml").read_text()
    drop_in = root.file("/etc/systemd/system/reautod-backup.service.d/ansible.conf").read_text()
    assert "--keep 14" in drop_in
    # The installed daemon accepts the rendered prod config with the vault's credentials.
    checked = root.run("reautod", "--config", "/etc/reautod/reautod.toml", "--check-config",
                       env={"CREDENTIALS_DIRECTORY": "/etc/reautod/credentials"})
    assert "configuration OK" in checked.stdout
    # No secret in the playbook's output.
    for secret in ("r3dis-Secret-value", "j" * 48, "db pass/with"):
        assert secret not in target.first.stdout


def test_second_apply_changes_nothing(target: Target) -> None:
    again = target.playbook("--skip-tags", SKIP_IN_CHROOT)
    assert again.returncode == 0, again.stdout[-4000:]
    counts = recap(again.stdout)
    assert (counts["changed"], counts["failed"]) == (0, 0), again.stdout[-6000:]


def test_check_mode_with_diff_reports_nothing_to_do(target: Target) -> None:
    check = target.playbook("--check", "--diff", "--skip-tags", SKIP_IN_CHROOT)
    assert check.returncode == 0, check.stdout[-4000:]
    assert recap(check.stdout)["changed"] == 0, check.stdout[-6000:]


def fake_nvidia_smi(root: Root, line: str | None) -> None:
    """Stand in for the driver's tool: print `line` as nvidia-smi's CSV, or be absent."""
    path = root.file("/usr/local/bin/nvidia-smi")
    if line is None:
        path.unlink(missing_ok=True)
        return
    path.write_text(f"#!/bin/sh\necho '{line}'\n")
    path.chmod(0o755)


@pytest.mark.parametrize(
    ("smi_line", "words"),
    [
        (None, "No NVIDIA GPU is usable on testbox"),
        ("NVIDIA H100 80GB HBM3, 535.104.05, 81559 MiB", "is 535.104.05; reautod-cuda needs 580"),
        ("NVIDIA H100 80GB HBM3, 580.65.06, 81559 MiB", None),
    ],
    ids=["no-driver", "old-driver", "good-driver"],
)
def test_the_gpu_check_fails_clearly(target: Target, smi_line: str | None, words: str | None) -> None:
    fake_nvidia_smi(target.root, smi_line)
    try:
        result = target.playbook("--tags", "gpu", "--skip-tags", "nvidia_repo",
                                 "-e", "reautod_variant=cuda")
    finally:
        fake_nvidia_smi(target.root, None)
    if words is None:
        assert result.returncode == 0, result.stdout[-3000:]
    else:
        assert result.returncode != 0
        assert words in result.stdout, result.stdout[-3000:]


def test_the_example_inventory_names_every_vault_secret() -> None:
    main = (ANSIBLE_DIR / "inventory/example/group_vars/reautod/main.yml").read_text()
    example = yaml.safe_load(
        (ANSIBLE_DIR / "inventory/example/group_vars/reautod/vault.yml.example").read_text())
    assert set(example) == set(VAULT)
    assert set(re.findall(r"vault_\w+", main)) == set(VAULT)
