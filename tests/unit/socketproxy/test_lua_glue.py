"""socketproxy.lua loads its pure modules from beside itself and registers the three actions."""

from __future__ import annotations

import shutil
import subprocess

from .lua import INTERPRETER, MODULES

STUB = """
local registered = {}
core = { register_action = function(name, kinds, fn, nargs)
  registered[#registered + 1] = name .. ":" .. table.concat(kinds, "+") .. ":" .. nargs
end }
dofile(arg[1])
table.sort(registered)
print(table.concat(registered, " "))
"""


def test_the_glue_registers_the_query_id_and_inspect_actions() -> None:
    binary = shutil.which(INTERPRETER)
    assert binary is not None, f"{INTERPRETER} is missing: run `make lua`"
    done = subprocess.run(
        [binary, "-e", STUB, "-", str(MODULES / "socketproxy.lua")],
        input="",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [
        "inspect_reply:http-res:0",
        "query:http-req:4",
        "visible_id:http-req:2",
    ]
