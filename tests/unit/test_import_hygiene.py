"""No module reads the environment or builds an AWS client at import time."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

from agentplatform.topology import PLATFORM

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_DIRS = [ROOT / "functions", ROOT / "layers" / "core" / "python" / "agentplatform"]
IMPORT_TIME_FORBIDDEN = {"getenv", "environ", "client", "resource", "Session", "Settings", "get_settings"}

PROBE = """
import boto3, botocore.session, os, sys
def refuse(*a, **k):
    raise AssertionError("AWS client built at import time")
boto3.client = boto3.resource = refuse
boto3.session.Session.client = boto3.session.Session.resource = refuse
botocore.session.Session.create_client = refuse
import importlib
for module in sys.argv[1:]:
    importlib.import_module(module)
print("imported", len(sys.argv) - 1)
"""


def test_every_handler_imports_with_an_empty_environment_and_no_client():
    modules = sorted({f.module for f in PLATFORM.functions})
    env = {"PATH": os.environ["PATH"]}  # nothing else: no region, no resource names, no credentials
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *modules], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"imported {len(modules)}"


def _executed_at_import(node: ast.AST):
    """Nodes that run when the module is imported: everything except the bodies of functions and lambdas."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            yield from child.decorator_list  # decorators do run at import
            continue
        if isinstance(child, ast.Lambda):
            continue
        yield child
        yield from _executed_at_import(child)


def _module_level_calls(tree: ast.Module):
    for node in _executed_at_import(tree):
        if isinstance(node, ast.Attribute) and node.attr in IMPORT_TIME_FORBIDDEN:
            yield node.attr, node.lineno
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in IMPORT_TIME_FORBIDDEN:
            yield node.func.id, node.lineno


def test_no_module_level_environment_read_or_client_in_product_code():
    offenders = []
    for folder in PRODUCT_DIRS:
        for path in folder.rglob("*.py"):
            tree = ast.parse(path.read_text())
            for name, line in _module_level_calls(tree):
                offenders.append(f"{path.relative_to(ROOT)}:{line} {name}")
    assert offenders == []


def test_the_check_finds_import_time_reads_and_ignores_function_bodies():
    source = "import os, boto3\nA = os.environ['X']\nS3 = boto3.client('s3')\ndef f():\n    return os.getenv('Y')\n"
    assert list(_module_level_calls(ast.parse(source))) == [("environ", 2), ("client", 3)]
