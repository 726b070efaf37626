"""Strategy files that misbehave the ways an assistant's code does: loops that never end (Python and
Numba), secrets read from the environment, crashes in compiled code, runaway memory."""

from __future__ import annotations

PY_LOOP = '''
from qlm_kernel import Param, Signals, Strategy


class PyLoop(Strategy):
    fast = Param(10, min=2, max=50)

    def signals(self, data):
        while True:
            pass
'''

NUMBA_LOOP = '''
import numba

from qlm_kernel import Param, Signals, Strategy


@numba.njit(cache=False)
def spin(n):
    x = 0
    while n > 0:
        x += 1
    return x


class NumbaLoop(Strategy):
    fast = Param(10, min=2, max=50)

    def signals(self, data):
        spin(1)
        return Signals(entry_long=data["close"].values > 0)
'''

STUBBORN_LOOP = '''
from qlm_kernel import Param, Signals, Strategy


class Stubborn(Strategy):
    """Catches every interruption and goes on looping."""

    fast = Param(10, min=2, max=50)

    def signals(self, data):
        while True:
            try:
                while True:
                    pass
            except BaseException:
                continue
'''

SECRET_READER = '''
import os

from qlm_kernel import Param, Signals, Strategy


class SecretReader(Strategy):
    fast = Param(10, min=2, max=50)

    def signals(self, data):
        seen = {name: os.environ.get(name, "absent") for name in
                ("QLM_CCXT_SECRET", "QLM_MCP_TOKEN", "MY_API_KEY", "DB_PASSWORD", "QLM_HOME")}
        raise ValueError("environment: " + repr(seen))
'''

SEGFAULT = '''
import ctypes

from qlm_kernel import Param, Signals, Strategy


class Crash(Strategy):
    fast = Param(10, min=2, max=50)

    def signals(self, data):
        ctypes.string_at(0)
'''

MEMORY_HOG = '''
import numpy as np

from qlm_kernel import Param, Signals, Strategy


class Hog(Strategy):
    fast = Param(10, min=2, max=50)

    def signals(self, data):
        block = np.ones(4 * 1024**3 // 8)  # 4 GiB
        return Signals(entry_long=data["close"].values > block[0])
'''

NUMBA_CACHED = '''
import numba
import numpy as np

from qlm_kernel import Param, Signals, Strategy


@numba.njit(cache=True)
def rising(x, k):
    out = np.zeros(x.shape[0], dtype=np.bool_)
    for i in range(k, x.shape[0]):
        out[i] = x[i] > x[i - k]
    return out


class Cached(Strategy):
    k = Param(5, min=1, max=50)

    def signals(self, data):
        up = rising(data["close"].to_numpy(), self.k)
        return Signals(entry_long=up, exit_long=~up)
'''

CASES = {
    "py_loop.py": PY_LOOP,
    "numba_loop.py": NUMBA_LOOP,
    "stubborn_loop.py": STUBBORN_LOOP,
    "secret_reader.py": SECRET_READER,
    "segfault.py": SEGFAULT,
    "memory_hog.py": MEMORY_HOG,
    "numba_cached.py": NUMBA_CACHED,
}


def write_cases(strategies_dir) -> None:
    """Write every case into a workspace's strategies folder."""
    strategies_dir.mkdir(parents=True, exist_ok=True)
    for name, code in CASES.items():
        (strategies_dir / name).write_text(code, encoding="utf-8")
