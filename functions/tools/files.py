"""The rules of the files tools (read_file, write_file, list_files): the tenant's own files in the files bucket,
under `<tenant>/` only.

A path is relative to the tenant's folder and checked before any S3 call: traversal (`..`), absolute paths,
backslashes, empty or dot-only segments, control and invisible characters, percent-encoding, symlink-like names
and anything whose Unicode compatibility form differs in a way that matters are refused, with the reason, so the
model can fix the call. The tenant comes from the caller, so another tenant's prefix is out of reach whatever the
path says: `../globex/x` is refused, and `globex/x` is acme's own `acme/globex/x`.
"""

from __future__ import annotations

import mimetypes
import posixpath
import re
import unicodedata

from agentplatform.ports import ObjectStore
from functions.tools.registry import ToolContext, ToolFailed

MAX_PATH_CHARS = 512
MAX_PATH_BYTES = 900  # S3 keys stop at 1,024 bytes; the tenant prefix needs the rest
READ_MAX_BYTES = 256 * 1024  # what one read puts into the model's context at most
WRITE_MAX_BYTES = 1024 * 1024  # the policy may lower it per tenant (write_file.max_bytes)
LIST_MAX = 100

_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_DRIVE = re.compile(r"^[A-Za-z]:")
# Names that stand for links on file systems mirrored into S3 (rclone, Windows shortcuts).
_LINK_SUFFIXES = (".rclonelink", ".lnk", ".symlink")
_S_IFLNK = 0o120000  # s3fs/goofys keep a symlink as an object whose `mode` metadata has this file type
_INVISIBLE = {"Cc", "Cf", "Co", "Cs", "Zl", "Zp"}


class PathRefused(ToolFailed):
    """A path the files tools refuse; the message says why."""


def check_path(path: str, *, folder: bool = False) -> str:
    """The path as a key below the tenant's folder, or PathRefused saying why. A `folder` (a list prefix) may end
    with "/"."""
    if not isinstance(path, str) or not path:
        raise PathRefused("the path is empty")
    if len(path) > MAX_PATH_CHARS or len(path.encode("utf-8")) > MAX_PATH_BYTES:
        raise PathRefused(f"the path is longer than {MAX_PATH_CHARS} characters")
    for form in dict.fromkeys((path, unicodedata.normalize("NFKC", path))):
        _check_form(form.removesuffix("/") if folder else form)
    return path


def _check_form(path: str) -> None:
    if any(unicodedata.category(ch) in _INVISIBLE for ch in path):
        raise PathRefused("the path holds a control or invisible character")
    if "\\" in path:
        raise PathRefused('the path holds a backslash; separate folders with "/"')
    if path.startswith(("/", "~")) or _DRIVE.match(path):
        raise PathRefused('the path is absolute; give it relative to your files, e.g. "reports/q3.txt"')
    if _PERCENT_ESCAPE.search(path):
        raise PathRefused("the path holds percent-encoding; write the characters themselves")
    for segment in path.split("/"):
        if not segment:
            raise PathRefused('the path has an empty segment ("//" or a trailing "/")')
        if set(segment) == {"."}:
            raise PathRefused('the path has a "." or ".." segment; paths cannot leave or name their folder')
        if segment.lower().endswith(_LINK_SUFFIXES):
            raise PathRefused("the path names a link; links are not followed")
    if posixpath.normpath(path) != path:  # belt and braces: nothing above may let a path normalise elsewhere
        raise PathRefused("the path does not stay where it points")


def tenant_root(ctx: ToolContext) -> str:
    """The caller's folder: the tenant from the caller's credentials, never from the arguments."""
    if not ctx.tenant or "/" in ctx.tenant or set(ctx.tenant) == {"."}:
        raise ToolFailed("the caller's tenant cannot own files")
    return f"{ctx.tenant}/"


def tenant_key(ctx: ToolContext, path: str, *, folder: bool = False) -> str:
    return tenant_root(ctx) + check_path(path, folder=folder)


def files_bucket(ctx: ToolContext, tool: str) -> ObjectStore:
    bucket: ObjectStore | None = ctx.resources.get("files_bucket")
    if bucket is None:
        raise ToolFailed(f"{tool} is not available in this deployment")
    return bucket


def is_link(metadata: dict[str, str]) -> bool:
    mode = metadata.get("mode", "")
    return "symlink-target" in metadata or (mode.isdigit() and int(mode) & 0o170000 == _S_IFLNK)


def content_type(path: str) -> str:
    return mimetypes.guess_type(path)[0] or "text/plain"


PATH_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_PATH_CHARS,
    "description": 'Relative to the organization\'s files, e.g. "reports/q3.txt".',
}
