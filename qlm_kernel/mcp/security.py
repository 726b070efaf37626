"""Secure-by-default HTTP settings: a bearer token, Host/Origin allow-lists, request size limits.

Over HTTP every MCP request needs ``Authorization: Bearer <token>`` (401 otherwise). Host and Origin
are checked against DNS rebinding: a foreign Host gets 421, a foreign Origin 403. Request bodies are
capped (413). The server binds 127.0.0.1 unless told otherwise; binding elsewhere requires naming
the hosts and origins to accept.
"""

from __future__ import annotations

import hmac
import os
import secrets

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings

from qlm_kernel.errors import SecurityError

MAX_REQUEST_BYTES = 1024 * 1024
"""Largest MCP request body accepted over HTTP (1 MiB: strategy files are capped at 256 KiB)."""
LOOPBACK = ("127.0.0.1", "localhost", "::1")
TOKEN_ENV = "QLM_MCP_TOKEN"


def new_token() -> str:
    """A fresh random bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def mask_token(token: str) -> str:
    """A token as it may be shown (notebook outputs are saved): its last four characters."""
    return f"...{token[-4:]}" if len(token) > 8 else "..."


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in ``path`` (whitespace stripped); the file must be readable by its owner only."""
    from pathlib import Path

    file = Path(path).expanduser()
    try:
        mode = file.stat().st_mode
        text = file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SecurityError(f"cannot read the token file {file}: {exc.strerror}", code="TOKEN_FILE",
                            hint="write the token into a file only you can read: chmod 600 FILE") from None
    if mode & 0o077:
        raise SecurityError(f"the token file {file} can be read by other users (mode {mode & 0o777:o})",
                            code="TOKEN_FILE_OPEN", hint=f"chmod 600 {file}")
    return text


def resolve_token(token: str | None, token_file: str | os.PathLike[str] | None = None) -> str:
    """The given token, else the one in ``token_file``, else ``$QLM_MCP_TOKEN``, else a new random one;
    refuses weak tokens. (A token on a command line is visible to every user in ``ps``: the CLI takes
    ``--token-file`` or the environment instead.)"""
    if not token and token_file is not None:
        token = read_token_file(token_file)
    token = token or os.environ.get(TOKEN_ENV) or new_token()
    if len(token) < 16:
        raise SecurityError(
            "the MCP token is too short (at least 16 characters)",
            code="WEAK_TOKEN",
            hint="leave it unset for a random token",
        )
    return token


class StaticTokenVerifier:
    """Accepts exactly one bearer token (constant-time comparison)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def verify_token(self, token: str) -> AccessToken | None:
        if hmac.compare_digest(token.encode(), self._token.encode()):
            return AccessToken(token=token, client_id="qlm-client", scopes=[])
        return None


def auth_settings(host: str, port: int) -> AuthSettings:
    """Resource-server auth settings (no OAuth flows: the static token is the credential)."""
    shown = f"[{host}]" if ":" in host else host
    return AuthSettings(issuer_url=f"http://{shown}:{port}", resource_server_url=None)


def transport_security(
    host: str, allowed_hosts: list[str] | None = None, allowed_origins: list[str] | None = None
) -> TransportSecuritySettings:
    """Host/Origin checks: loopback names by default; a non-loopback bind must list its own."""
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if host not in LOOPBACK and not allowed_hosts:
        raise SecurityError(
            f"binding {host} exposes the server beyond this machine",
            code="UNSAFE_BIND",
            hint="pass allowed_hosts=['name:port', ...] (and allowed_origins) to accept "
            "requests for that address, or bind 127.0.0.1",
        )
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts + list(allowed_hosts or []),
        allowed_origins=origins + list(allowed_origins or []),
    )
