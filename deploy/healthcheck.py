"""The QLM image's health check: exit 0 when the server in this container answers HTTP.

Default: the MCP server at http://127.0.0.1:$QLM_MCP_PORT/mcp must answer a request without a token with
401 (it is up, and it still wants its token). With $QLM_HEALTH_URL set (e.g. http://127.0.0.1:8888/api
for JupyterLab, http://127.0.0.1:8866/ for Voila), any answer below 500 is healthy.
"""

import os
import sys
import urllib.error
import urllib.request

url = os.environ.get("QLM_HEALTH_URL")
want = None
if not url:
    url = f"http://127.0.0.1:{os.environ.get('QLM_MCP_PORT', '8765')}/mcp"
    want = 401
try:
    with urllib.request.urlopen(url, timeout=5) as response:
        status = response.status
except urllib.error.HTTPError as exc:
    status = exc.code
except OSError as exc:
    print(f"unhealthy: {url}: {exc}")
    sys.exit(1)
ok = status == want if want is not None else status < 500
print(f"{'healthy' if ok else 'unhealthy'}: {url} answered {status}")
sys.exit(0 if ok else 1)
