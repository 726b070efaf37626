"""A writer killed with SIGKILL mid-transaction, 20 times: the file stays intact, batches are atomic."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from qlm_kernel.store import Store

BATCH = 200  # trials per transaction
KILLS = 20

_CHILD = """
import sys
from qlm_kernel.store import Store
store = Store(sys.argv[1])
job = sys.argv[2]
print("ready", flush=True)
b = 0
while True:
    rows = [{"params": {"b": b, "i": i}, "metrics": {"pad": "z" * 400}, "objective": float(i)}
            for i in range(BATCH)]
    print("begin", b, flush=True)
    store.add_trials(job, rows)
    print("commit", b, flush=True)
    b += 1
""".replace("BATCH", str(BATCH))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_transaction_never_corrupts_or_splits_a_batch(tmp_path):
    path = tmp_path / "qlm.db"
    rng = random.Random(1234)
    with Store(path) as store:
        jobs = [store.create_job("crash-test") for _ in range(KILLS)]
    mid_transaction = 0
    expected_total = 0
    for job in jobs:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), job], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
        time.sleep(rng.uniform(0.01, 0.2))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        # read through the same buffered readers as readline() above: communicate() reads the raw pipes
        # and loses the lines readline() read ahead (a slow parent on a loaded machine lost "commit 0..")
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, err[-2000:]
        lines = [line.split() for line in out.splitlines() if line.count(" ") == 1]
        committed = {int(b) for word, b in lines if word == "commit"}
        if lines and lines[-1][0] == "begin":
            mid_transaction += 1

        with Store(path) as store:  # reopening recovers the WAL
            assert store.integrity_check() == "ok"
            sizes = Counter(t["params"]["b"] for t in store.list_trials(job))
            assert set(sizes.values()) <= {BATCH}, f"partial batch: {sizes}"  # all of a batch or none
            assert committed <= set(sizes), f"reported but missing: {sorted(committed - set(sizes))}"
            assert set(sizes) - committed <= {max(committed, default=-1) + 1}  # at most the unreported last
            expected_total += BATCH * len(sizes)
            assert store.stats()["tables"]["trials"] == expected_total  # earlier jobs' rows all intact
    assert mid_transaction >= 1  # the kills really did land inside transactions
