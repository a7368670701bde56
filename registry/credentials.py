"""Registry credentials in docker's formats: config.json `auths`, `credsStore`, `credHelpers`.

The same files docker, podman (with DOCKER_CONFIG), oras and falcoctl use, so one `login`
serves every tool. Secrets go to a credential helper when one is configured; otherwise into
config.json (mode 0600), as docker does.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import AuthError, RegistryError
from registry.options import ClientOptions

log = logging.getLogger(__name__)

HELPER_TIMEOUT = 30.0


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    # A bearer token used as is (OAuth2 client credentials, docker `registrytoken`).
    access_token: str = ""
    # docker's `identitytoken`: an OAuth2 refresh token for the registry's token endpoint.
    identity_token: str = ""

    @property
    def has_basic(self) -> bool:
        return bool(self.username or self.password)


def docker_config_path(options: ClientOptions) -> Path:
    if options.docker_config_dir is not None:
        return options.docker_config_dir / "config.json"
    env = os.environ.get("DOCKER_CONFIG")
    base = Path(env) if env else Path.home() / ".docker"
    return base / "config.json"


def _server_keys(host: str) -> list[str]:
    """The spellings docker and friends use as keys for one registry host."""
    keys = [host, f"https://{host}", f"http://{host}", f"https://{host}/v1/", f"https://{host}/v2/"]
    if host in ("docker.io", "registry-1.docker.io", "index.docker.io"):
        keys.append("https://index.docker.io/v1/")
    return keys


def _load_docker_config(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise RegistryError(
            f"cannot read docker config {path}: {error}",
            hint="fix or remove the file, or point DOCKER_CONFIG at another directory",
        ) from error
    if not isinstance(data, dict):
        raise RegistryError(f"docker config {path} is not a JSON object")
    return data


def _helper_for(config: dict[str, Any], host: str) -> str | None:
    helpers = config.get("credHelpers") or {}
    for key in _server_keys(host):
        if key in helpers:
            return str(helpers[key])
    store = config.get("credsStore")
    return str(store) if store else None


def _run_helper(helper: str, action: str, payload: str) -> str:
    program = f"docker-credential-{helper}"
    if shutil.which(program) is None:
        raise AuthError(
            f"credential helper {program} is not installed",
            hint="install it or remove credsStore/credHelpers from docker's config.json",
        )
    try:
        result = subprocess.run(
            [program, action],
            input=payload,
            capture_output=True,
            text=True,
            timeout=HELPER_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise AuthError(f"credential helper {program} {action} timed out") from error
    if result.returncode != 0:
        message = (result.stdout or result.stderr).strip()
        if action == "get" and "credentials not found" in message.lower():
            return ""
        raise AuthError(f"credential helper {program} {action} failed: {message}")
    return result.stdout


def _from_auth_entry(entry: dict[str, Any]) -> Credentials | None:
    if entry.get("identitytoken"):
        return Credentials(
            username=entry.get("username", ""), identity_token=entry["identitytoken"]
        )
    if entry.get("registrytoken"):
        return Credentials(access_token=entry["registrytoken"])
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(entry["auth"]).decode()
        except ValueError:
            return None
        username, _, password = decoded.partition(":")
        return Credentials(username=username, password=password)
    if entry.get("username"):
        return Credentials(username=entry["username"], password=entry.get("password", ""))
    return None


def load_credentials(host: str, options: ClientOptions) -> Credentials | None:
    """Explicit credentials, else docker's store, else falcoctl-style OAuth2 client credentials."""
    if options.username is not None or options.password is not None:
        return Credentials(username=options.username or "", password=options.password or "")
    config = _load_docker_config(docker_config_path(options))
    helper = _helper_for(config, host)
    if helper:
        for key in (host, f"https://{host}"):
            try:
                output = _run_helper(helper, "get", key)
            except AuthError as error:
                # A broken helper must not block anonymous pulls: warn, fall back to `auths`.
                log.warning("%s; trying config.json and anonymous access", error)
                break
            if output.strip():
                try:
                    secret = json.loads(output)
                except ValueError as error:
                    raise AuthError(f"credential helper {helper} returned invalid JSON") from error
                username = secret.get("Username", "")
                # docker's convention: username "<token>" marks an identity token.
                if username == "<token>":
                    return Credentials(identity_token=secret.get("Secret", ""))
                return Credentials(username=username, password=secret.get("Secret", ""))
    auths = config.get("auths") or {}
    for key in _server_keys(host):
        if key in auths and isinstance(auths[key], dict):
            found = _from_auth_entry(auths[key])
            if found:
                return found
    if options.oauth_credentials_file is not None:
        from registry.oauth import access_token_for

        token = access_token_for(host, options)
        if token:
            return Credentials(access_token=token)
    return None


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON with mode 0600 through a temporary file, so a crash leaves the old file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(data, out, indent="\t")
            out.write("\n")
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def store_credentials(host: str, username: str, password: str, options: ClientOptions) -> str:
    """Store credentials for host; returns where they went (helper name or config path)."""
    path = docker_config_path(options)
    config = _load_docker_config(path)
    helper = _helper_for(config, host)
    if helper:
        payload = json.dumps({"ServerURL": host, "Username": username, "Secret": password})
        _run_helper(helper, "store", payload)
        return f"docker-credential-{helper}"
    auths = config.setdefault("auths", {})
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    auths[host] = {"auth": token}
    write_private_json(path, config)
    return str(path)


def erase_credentials(host: str, options: ClientOptions) -> bool:
    """Remove stored credentials for host. Returns False when there were none."""
    path = docker_config_path(options)
    config = _load_docker_config(path)
    helper = _helper_for(config, host)
    if helper:
        _run_helper(helper, "erase", host)
        return True
    auths = config.get("auths") or {}
    removed = [key for key in _server_keys(host) if auths.pop(key, None) is not None]
    if removed:
        write_private_json(path, config)
    return bool(removed)
