"""The files tools on a real S3 bucket (moto in-process): tenant prefixes, refused paths, size limits, paging."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from agentplatform.adapters.aws.storage import S3ObjectStore
from functions.tools import list_files, read_file, write_file
from functions.tools.files import READ_MAX_BYTES, WRITE_MAX_BYTES, PathRefused, check_path
from functions.tools.registry import ToolContext, ToolRegistry
from tests.fakes import MemoryObjectStore

BUCKET = "files"


@pytest.fixture
def bucket() -> Iterator[S3ObjectStore]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        yield S3ObjectStore(BUCKET, s3)


@pytest.fixture
def registry() -> ToolRegistry:
    return ToolRegistry([read_file.SPEC, write_file.SPEC, list_files.SPEC])


def ctx(bucket, tenant: str = "acme") -> ToolContext:
    resources = {"files_bucket": bucket} if bucket is not None else {}
    return ToolContext(
        tenant=tenant,
        user="alice",
        groups=(),
        conversation_id="c1",
        turn=1,
        step=0,
        call_id="call0",
        idempotency_key="k",
        resources=resources,
    )


REFUSED = {
    "../globex/x": '"." or ".."',
    "reports/../../globex/x": '"." or ".."',
    "/etc/passwd": "absolute",
    "~/secrets": "absolute",
    "C:/Windows/win.ini": "absolute",
    "..\\globex\\x": "backslash",
    "%2e%2e/globex/x": "percent-encoding",
    "..%2fglobex%2fx": "percent-encoding",
    "%252e%252e/x": "percent-encoding",
    "reports//q3.txt": "empty segment",
    "reports/": "empty segment",
    "./q3.txt": '"." or ".."',
    "reports/.../x": '"." or ".."',
    "reports/q3\x00.txt": "control",
    "reports/q3\n.txt": "control",
    "reports/\u202eq3.txt": "invisible",
    "\uff0e\uff0e\uff0fglobex\uff0fx": '"." or ".."',  # fullwidth "../globex/x": NFKC makes it traversal
    "shortcut.lnk": "link",
    "data/dump.rclonelink": "link",
    "x" * 513: "longer",
}


@pytest.mark.parametrize("path", list(REFUSED))
def test_a_path_that_could_leave_the_tenants_folder_is_refused_with_the_reason(path):
    with pytest.raises(PathRefused) as refused:
        check_path(path)
    assert REFUSED[path] in str(refused.value)


@pytest.mark.parametrize("path", ["reports/q3.txt", "notes.md", "a/b/c/d.json", "Übersicht/März.txt", "v1.2/x..y"])
def test_ordinary_relative_paths_are_accepted(path):
    assert check_path(path) == path


def test_refused_paths_never_reach_the_bucket_and_the_model_reads_why(bucket, registry):
    bucket.put("globex/x", b"globex's secret")
    bucket.put("acme/../globex/x", b"planted")  # S3 takes any key; the tool must not address it
    for tool, arguments in (
        ("read_file", {"path": "../globex/x"}),
        ("read_file", {"path": "/etc/passwd"}),
        ("write_file", {"path": "../globex/x", "content": "overwritten"}),
        ("list_files", {"prefix": "../globex/"}),
        ("list_files", {"cursor": "../globex/a"}),
    ):
        outcome = registry.call(tool, arguments, ctx(bucket))
        assert outcome.status == "error" and "path" in outcome.error, (tool, outcome)
    assert bucket.get("globex/x").body == b"globex's secret"


def test_a_tenants_files_are_its_own(bucket, registry):
    for tenant, path, text in (
        ("acme", "reports/q3.txt", "acme q3"),
        ("acme", "notes.md", "acme notes"),
        ("globex", "reports/q3.txt", "globex q3"),
        ("acme2", "leak.txt", "a tenant whose name starts with acme"),
    ):
        assert registry.call("write_file", {"path": path, "content": text}, ctx(bucket, tenant)).status == "ok"
    listed = registry.call("list_files", {}, ctx(bucket))
    assert listed.status == "ok"
    assert [f["path"] for f in listed.result["files"]] == ["notes.md", "reports/q3.txt"]
    assert listed.result["next_cursor"] is None
    read = registry.call("read_file", {"path": "reports/q3.txt"}, ctx(bucket))
    assert read.result["content"] == "acme q3" and read.result["content_type"] == "text/plain"
    # "globex/..." from acme is acme's own folder, never globex's
    assert registry.call("read_file", {"path": "globex/reports/q3.txt"}, ctx(bucket)).status == "error"
    assert registry.call("list_files", {"prefix": "globex/"}, ctx(bucket)).result["files"] == []
    assert bucket.get("acme/notes.md").metadata["content-type"] == "text/markdown"


def test_list_files_pages_under_a_prefix(bucket, registry):
    for i in range(5):
        registry.call("write_file", {"path": f"logs/{i}.txt", "content": str(i)}, ctx(bucket))
    registry.call("write_file", {"path": "other.txt", "content": "x"}, ctx(bucket))
    seen, cursor = [], None
    while True:
        arguments = {"prefix": "logs/", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = registry.call("list_files", arguments, ctx(bucket)).result
        seen += [f["path"] for f in page["files"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"logs/{i}.txt" for i in range(5)]
    # a cursor from another prefix cannot widen the listing
    assert registry.call("list_files", {"prefix": "logs/", "cursor": "other.txt"}, ctx(bucket)).status == "error"


def test_size_limits_on_read_and_write(bucket, registry):
    big = "x" * (READ_MAX_BYTES + 1)
    assert registry.call("write_file", {"path": "big.txt", "content": big}, ctx(bucket)).status == "ok"
    refused = registry.call("read_file", {"path": "big.txt"}, ctx(bucket))
    assert refused.status == "error" and f"up to {READ_MAX_BYTES} bytes" in refused.error
    # four bytes a character: under the schema's character bound, over the byte limit
    emoji = "\U0001f600" * (WRITE_MAX_BYTES // 4 + 1)
    too_big = registry.call("write_file", {"path": "emoji.txt", "content": emoji}, ctx(bucket))
    assert too_big.status == "error" and f"up to {WRITE_MAX_BYTES} bytes" in too_big.error
    assert registry.call("list_files", {"prefix": "emoji"}, ctx(bucket)).result["files"] == []


def test_binary_files_links_and_missing_files_are_explained(bucket, registry):
    bucket.put("acme/logo.png", b"\x89PNG\r\n\x1a\n\xff\xfe")
    bucket.put("acme/current", b"reports/q3.txt", {"mode": str(0o120777)})  # s3fs's symlink object
    binary = registry.call("read_file", {"path": "logo.png"}, ctx(bucket))
    assert binary.status == "error" and "not a UTF-8 text file" in binary.error
    link = registry.call("read_file", {"path": "current"}, ctx(bucket))
    assert link.status == "error" and "link" in link.error
    missing = registry.call("read_file", {"path": "nope.txt"}, ctx(bucket))
    assert missing.status == "error" and "no file nope.txt" in missing.error


def test_without_the_bucket_the_tools_say_they_are_not_available():
    outcome = ToolRegistry([read_file.SPEC]).call("read_file", {"path": "a.txt"}, ctx(None))
    assert outcome.status == "error" and "not available" in outcome.error


def test_the_memory_fake_pages_like_s3(bucket):
    fake = MemoryObjectStore()
    for store in (bucket, fake):
        for key in ("t/a", "t/b/c", "t/d", "u/e"):
            store.put(key, b"12")
    for store in (bucket, fake):
        first, after = store.list_page("t/", limit=2)
        rest, last = store.list_page("t/", limit=2, after=after)
        assert [o.key for o in first] == ["t/a", "t/b/c"] and after == "t/b/c"
        assert [(o.key, o.size) for o in rest] == [("t/d", 2)] and last is None
