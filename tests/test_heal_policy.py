"""The patch policy (static checks), the strict diff applier and reply parsing, in isolation."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from heal_cases import NAME_ERROR

from qlm_kernel.errors import QLMError, SecurityError, StrategyError
from qlm_kernel.healing import check_candidate, extract_proposal, normalize_reply
from qlm_kernel.healing.diffs import apply_unified_diff, make_diff

GOOD = NAME_ERROR.fixed


def check(code: str) -> None:
    check_candidate(
        code,
        current=NAME_ERROR.broken,
        expected_classes=["SmaCross"],
        file_name="broken.py",
        max_bytes=256 * 1024,
    )


def inject(line: str) -> str:
    """GOOD with ``line`` added as the first statement of signals()."""
    return GOOD.replace('        close = data["close"]\n', f'        {line}\n        close = data["close"]\n')


REFUSED = {
    "import os": ("import os\n" + GOOD, "FORBIDDEN_IMPORT"),
    "from subprocess": ("from subprocess import run\n" + GOOD, "FORBIDDEN_IMPORT"),
    "socket inside": (inject("import socket"), "FORBIDDEN_IMPORT"),
    "relative import": ("from . import helpers\n" + GOOD, "FORBIDDEN_IMPORT"),
    "__import__": (inject("m = __import__('os')"), "FORBIDDEN_CALL"),
    "eval": (inject("x = eval('1')"), "FORBIDDEN_CALL"),
    "exec": (inject("exec('x = 1')"), "FORBIDDEN_CALL"),
    "open": (inject("open('/etc/passwd').read()"), "FORBIDDEN_CALL"),
    "dunder escape": (inject("x = ().__class__.__base__.__subclasses__()"), "FORBIDDEN_CALL"),
    "getattr private": (inject("x = getattr(self, '_values')"), "FORBIDDEN_CALL"),
    "to_csv path": (inject("data.to_csv('/tmp/out.csv')"), "OUTSIDE_WORKSPACE"),
    "read_csv": (inject("import pandas as pd; extra = pd.read_csv('/etc/hosts')"), "OUTSIDE_WORKSPACE"),
    "np.save": (inject("import numpy as np; np.save('/tmp/x.npy', data.close)"), "OUTSIDE_WORKSPACE"),
    "file marker": ("# file: ../other.py\n" + GOOD, "OUTSIDE_WORKSPACE"),
    "class renamed": (GOOD.replace("class SmaCross", "class Other"), "CLASS_MISSING"),
    "no strategy": ("x = 1\n", "CLASS_MISSING"),
    "prose": ("Sorry, I cannot fix this file.", "NOT_PARSEABLE"),
    "syntax": (GOOD.replace("def signals(self, data):", "def signals(self, data)"), "NOT_PARSEABLE"),
    "empty": ("   \n", "NOT_PARSEABLE"),
    "unchanged": (NAME_ERROR.broken, "UNCHANGED"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_unsafe_or_wrong_patches_are_refused_with_a_code_and_hint(case):
    code, expected = REFUSED[case]
    with pytest.raises(QLMError) as info:
        check(code)
    assert info.value.code == expected and info.value.hint
    assert isinstance(info.value, SecurityError) == (
        expected in {"FORBIDDEN_IMPORT", "FORBIDDEN_CALL", "OUTSIDE_WORKSPACE"}
    )


def test_allowed_code_passes():
    extra = (
        "import math\nimport numpy as np\nimport pandas as pd\nfrom numba import njit\n"
        "from collections import deque\n"
    )
    check(extra + inject("x = getattr(self, 'fast'); s = data.close.to_json(); y = math.sqrt(4)"))


def test_forbidden_import_names_the_module_and_line():
    with pytest.raises(SecurityError) as info:
        check(GOOD + "\nimport shutil\n")
    assert info.value.context["module"] == "shutil" and info.value.context["line"] == GOOD.count("\n") + 2


def test_a_diff_with_wrong_line_numbers_applies_where_its_text_matches():
    diff = make_diff(NAME_ERROR.broken, NAME_ERROR.fixed, "broken.py").replace("@@ -7,", "@@ -3,")
    assert apply_unified_diff(NAME_ERROR.broken, diff, "broken.py") == NAME_ERROR.fixed


def test_a_diff_that_does_not_match_is_refused_whole():
    diff = make_diff(NAME_ERROR.broken, NAME_ERROR.fixed, "broken.py").replace("clsoe", "closs")
    with pytest.raises(StrategyError) as info:
        apply_unified_diff(NAME_ERROR.broken, diff, "broken.py")
    assert info.value.code == "DIFF_DOES_NOT_APPLY" and info.value.hint


@pytest.mark.parametrize("name", ["other.py", "../broken.py", "/dev/null"])
def test_a_diff_naming_another_file_is_refused(name):
    diff = make_diff(NAME_ERROR.broken, NAME_ERROR.fixed, "broken.py").replace("a/broken.py", name, 1)
    with pytest.raises(SecurityError) as info:
        apply_unified_diff(NAME_ERROR.broken, diff, "broken.py")
    assert info.value.code == "OUTSIDE_WORKSPACE"


def test_replies_of_every_shape_are_read():
    assert normalize_reply("x").text == "x"
    r = normalize_reply({"content": "code", "reasoning": "because"})
    assert (r.text, r.thinking) == ("code", "because")
    r = normalize_reply(SimpleNamespace(content=[SimpleNamespace(text="a"), {"text": "b"}]))
    assert r.text == "a\nb"
    r = normalize_reply("<thinking>step 1</thinking>\nanswer")
    assert (r.text, r.thinking) == ("answer", "step 1")
    with pytest.raises(StrategyError) as info:
        normalize_reply(42)
    assert info.value.code == "BAD_REPLY"


def test_the_longest_python_block_is_the_proposal_and_diffs_are_recognized():
    text = "Change this:\n```python\nx = 1\n```\nFull file:\n```python\n" + GOOD + "```\n"
    assert extract_proposal(text).body == GOOD and extract_proposal(text).kind == "file"
    diff = make_diff(NAME_ERROR.broken, GOOD, "broken.py")
    assert extract_proposal("```\n" + diff + "```").kind == "diff"
    assert extract_proposal(diff).kind == "diff"
    assert extract_proposal(GOOD).body == GOOD
