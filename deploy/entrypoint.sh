#!/bin/sh
# The QLM image's entrypoint.
#   (no arguments) or `mcp [extra qlm mcp options]`: serve MCP over HTTP, `qlm mcp --http`, bound to
#       $QLM_MCP_HOST:$QLM_MCP_PORT inside the container (0.0.0.0:8765: a published port reaches it only so;
#       publish it on the host's loopback, `-p 127.0.0.1:8765:8765`). The bearer token comes from
#       $QLM_MCP_TOKEN, else the file $QLM_MCP_TOKEN_FILE, else /run/secrets/qlm_mcp_token (a podman or
#       docker secret); without one the server does not start. Requests must name the host as one of
#       $QLM_MCP_ALLOW_HOSTS (space-separated HOST:PORT, `*` for any port; default 127.0.0.1:* localhost:*).
#   anything else: run it as given (`jupyter lab ...`, `voila ...`, `qlm ...`, `bash`).
set -eu

if [ "$#" -gt 0 ] && [ "$1" != "mcp" ]; then
  exec "$@"
fi
[ "$#" -gt 0 ] && shift

token_file="${QLM_MCP_TOKEN_FILE:-}"
if [ -z "${QLM_MCP_TOKEN:-}" ] && [ -z "$token_file" ] && [ -e /run/secrets/qlm_mcp_token ]; then
  token_file=/run/secrets/qlm_mcp_token
fi
if [ -z "${QLM_MCP_TOKEN:-}" ]; then
  if [ -z "$token_file" ]; then
    cat >&2 <<'MSG'
qlm: refusing to serve MCP over HTTP without a token.
  Give the bearer token (16 characters or more) in one of these ways:
    -e QLM_MCP_TOKEN=...                                  (an environment variable)
    -v /path/token:/run/secrets/qlm_mcp_token:ro          (a file readable by uid 10001)
    --secret qlm_mcp_token                                (a podman / docker secret of that name)
    -e QLM_MCP_TOKEN_FILE=/some/mounted/file              (a file elsewhere)
  e.g. make one with: python3 -c "import secrets; print(secrets.token_urlsafe(32))"
MSG
    exit 64
  fi
  if [ ! -r "$token_file" ]; then
    echo "qlm: cannot read the token file $token_file as uid $(id -u): mount it readable by uid $(id -u)" >&2
    exit 64
  fi
  # The file is read here, not by `qlm mcp --token-file`, which insists on mode 600 (a guard for shared
  # machines); a mounted secret's mode is set by the engine, and only this user runs in the container.
  QLM_MCP_TOKEN="$(tr -d ' \t\r\n' <"$token_file")"
  export QLM_MCP_TOKEN
  if [ -z "$QLM_MCP_TOKEN" ]; then
    echo "qlm: the token file $token_file is empty" >&2
    exit 64
  fi
fi
unset QLM_MCP_TOKEN_FILE

allow=""
for h in ${QLM_MCP_ALLOW_HOSTS:-127.0.0.1:* localhost:*}; do
  allow="$allow --allow-host $h"
done
# shellcheck disable=SC2086
exec qlm mcp --http --host "${QLM_MCP_HOST:-0.0.0.0}" --port "${QLM_MCP_PORT:-8765}" $allow "$@"
