"""Export recorded deliveries: JSONL, CSV, HAR, or a bash script of curl commands.

No Textual here. :func:`export` streams the selected ``events`` rows in id
order from a cursor and writes to a binary file in chunks, so memory stays
flat at any table size. A selection is a session (or all), a filter in the
language of :mod:`monitor.filters` and/or an explicit list of ids.

- ``jsonl``: one body per line, its exact bytes. A body containing a newline
  (a pretty-printed sample) cannot be one line: it is written compacted and
  counted in :attr:`ExportReport.reformatted`. With ``meta=True`` each line is
  a JSON object with the delivery's metadata and its body as ``body_text`` (or
  ``body_base64`` when it is not UTF-8), so bodies round-trip byte for byte.
- ``csv``: every events column except ``body`` and ``headers``, with a header
  row; every cell made inert for terminals and spreadsheets (:func:`csv_cell`).
- ``har``: HAR 1.2, one entry per delivery with the answer the listener gave.
- ``curl``: a bash script, one ``curl`` per delivery, reproducing the exact
  body, headers and path (see :func:`curl_command`); the script is ASCII apart
  from its comments, which hold only printable characters.

JSON output (``--meta`` lines, HAR) escapes C1 controls, bidirectional and
invisible format characters as ``\\uXXXX``: the same strings, nothing for a
terminal to obey. Plain JSONL is the bodies' exact bytes, as received.

With ``mask=True`` (``export --mask``, the TUI's masked or web exports) every
format hides personal data as the TUI's ``m`` does (:mod:`monitor.masking`):
a JSON body is parsed, masked (:func:`~monitor.masking.mask_json`) and written
again as compact JSON, so no format carries exact bytes; a body that is not
JSON cannot be masked field by field and becomes a placeholder
(:func:`hidden_body`), never its bytes; CSV's personal columns are masked
(:func:`~monitor.masking.mask_if`); credentials in headers (``Authorization``
and the other :data:`~monitor.signing.SECRET_HEADERS`) keep only their scheme.

:func:`export_to_path` is how a file is written, by the command line and the
TUI alike: never onto the database or its companion files, and through a
temporary file renamed into place, so a failed export leaves no half file.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import re
import secrets
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Literal
from urllib.parse import parse_qsl, urlsplit

import orjson
import sqlite_utils

from monitor import __version__, queries
from monitor.masking import mask_if, mask_json
from monitor.signing import REDACTED, SIGNATURE_HEADER, redact_headers
from monitor.store import EVENTS_COLUMNS
from monitor.textsafe import clean
from monitor.wording import count, plural

Format = Literal["jsonl", "csv", "har", "curl"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv", "har", "curl")
#: How the TUI's export dialog names each format, and the file extension it suggests.
FORMAT_LABELS: dict[Format, str] = {
    "jsonl": "JSONL (one body per line)",
    "csv": "CSV (parsed columns)",
    "har": "HAR",
    "curl": "curl commands (bash)",
}
EXTENSIONS: dict[Format, str] = {"jsonl": "jsonl", "csv": "csv", "har": "har", "curl": "sh"}
#: The MIME type of a download, by file extension (``mimetypes`` knows neither .jsonl nor .har).
MIME_TYPES = {
    "jsonl": "application/x-ndjson", "csv": "text/csv", "har": "application/json", "sh": "text/x-shellscript",
}  # fmt: skip
DEFAULT_BASE_URL = "http://127.0.0.1:8787"

#: Keys of a ``jsonl --meta`` line besides the body (``body_text`` or ``body_base64``).
META_KEYS = (
    "id", "session_id", "received_at", "method", "path", "remote_addr", "headers", "signature", "basic_auth", "event",
)  # fmt: skip
#: Headers curl computes itself, or that describe the wire rather than the delivery.
HOP_BY_HOP = frozenset(
    {"host", "content-length", "connection", "transfer-encoding", "content-encoding", "accept-encoding", "expect"}
    | {"keep-alive", "te", "trailer", "upgrade", "proxy-connection"}
)
#: Headers curl adds on its own; removed (``-H 'Name:'``) when the delivery did not have them.
_CURL_DEFAULTS = ("Accept", "User-Agent", "Content-Type", "Expect")
#: Above this many quoted bytes the body goes through bash's printf and a pipe
#: (Linux limits one program argument to 128 KiB; builtins have no limit).
_MAX_ARGUMENT = 100_000
_CHUNK = 1 << 20
_MAX_NOTED = 20


@dataclass
class ExportReport:
    exported: int = 0
    #: jsonl: bodies with newlines written compacted (not byte-exact); their first ids.
    reformatted: int = 0
    reformatted_ids: list[int] = field(default_factory=list)
    #: jsonl: bodies with newlines that are not JSON either (cannot be one line); left out.
    skipped: int = 0
    skipped_ids: list[int] = field(default_factory=list)
    #: Personal data was masked (``mask=True``); in which format, and whether with ``--meta``.
    masked: bool = False
    fmt: str = ""
    meta: bool = False
    #: mask: bodies that are not JSON, written as a placeholder (:func:`hidden_body`); their first ids.
    hidden: int = 0
    hidden_ids: list[int] = field(default_factory=list)

    def warnings(self) -> list[str]:
        out = []
        if self.masked and self.exported and self.fmt != "csv":
            if self.fmt == "curl":
                out.append(
                    "personal data is masked: the commands send masked bodies, not the bytes received, "
                    f"so their {SIGNATURE_HEADER} header will not match them"
                )
            elif self.meta:
                out.append("personal data is masked: the metadata lines carry masked bodies, not the exact bytes")
            else:
                out.append("personal data is masked: bodies are masked JSON, not the bytes received")
        if n := self.hidden:
            out.append(
                f"{count(n, 'body', 'bodies')} {plural('was', n)} not JSON and could not be masked: "
                f"replaced by a placeholder ({plural('id', n)} {_ids(self.hidden_ids, n)})"
            )
        if n := self.reformatted:
            out.append(
                f"{count(n, 'body', 'bodies')} contained newlines and {plural('was', n)} written compacted, "
                f"not byte for byte ({plural('id', n)} {_ids(self.reformatted_ids, n)}); use --meta for exact bodies"
            )
        if n := self.skipped:
            out.append(
                f"{count(n, 'body', 'bodies')} contained newlines and {plural('is', n)} not JSON, "
                f"so {plural('was', n)} left out ({plural('id', n)} {_ids(self.skipped_ids, n)}); "
                "use --meta for exact bodies"
            )
        return out


def _ids(ids: list[int], total: int) -> str:
    return ", ".join(map(str, ids)) + (", ..." if total > len(ids) else "")


def export(
    db: sqlite_utils.Database,
    out: BinaryIO,
    fmt: Format,
    *,
    session_id: int | None = None,
    filter_text: str = "",
    ids: Sequence[int] | None = None,
    meta: bool = False,
    base_url: str = DEFAULT_BASE_URL,
    mask: bool = False,
) -> ExportReport:
    """Write the selected deliveries to ``out`` in ``fmt``; raises FilterError for a bad filter.

    ``mask``: hide personal data in every format (see the module's docstring).
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (choose from {', '.join(FORMATS)})")
    selection: dict[str, Any] = {"session_id": session_id, "filter_text": filter_text, "ids": ids}
    report = ExportReport(masked=mask, fmt=fmt, meta=meta and fmt == "jsonl")
    sink = _Sink(out)
    if fmt == "jsonl" and not meta:
        for row_id, body in queries.export_rows(db, ("id", "body"), **selection):
            if mask:
                line: bytes | None = _masked(row_id, _bytes(body), report) + b"\n"
                report.exported += 1
            else:
                line = _plain_line(row_id, _bytes(body), report)
            if line is not None:
                sink.write(line)
    elif fmt == "jsonl":
        names = (*META_KEYS, "body")
        for row in queries.export_rows(db, names, **selection):
            record = dict(zip(names, row, strict=True))
            if mask:
                record["body"] = _masked(record["id"], _bytes(record["body"]), report)
            sink.write(json_safe(orjson.dumps(meta_record(record, mask=mask))) + b"\n")
            report.exported += 1
    elif fmt == "csv":
        _csv(db, sink, selection, report)
    elif fmt == "har":
        _har(db, sink, selection, report)
    else:
        _curl_script(db, sink, selection, report, base_url)
    sink.flush()
    return report


def mime_type(name: str) -> str:
    """The MIME type to download the file ``name`` with (:data:`MIME_TYPES` by extension)."""
    return MIME_TYPES.get(name.rpartition(".")[2].lower(), "application/octet-stream")


def download_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be the name of a browser download (the browser picks the folder), or None.

    A folder (``/`` or ``\\``) is refused, and what the download's
    ``Content-Disposition`` header (written unquoted by textual-serve) would cut
    or garble: control characters, ``"`` and ``;``.
    """
    if not name.strip():
        return "Type the file name"
    if "/" in name or "\\" in name:
        return "A file name only, without a folder: your browser chooses where it goes"
    if name.strip() in (".", ".."):
        return f"{name.strip()} is not a file name"
    if not name.isprintable() or any(char in name for char in '";'):
        return "A download's name cannot hold control characters, \" or ;"
    return None


class ExportTargetError(ValueError):
    """The output file is the database being exported, or one of its companion files."""


#: The files SQLite keeps for a database, by suffix, and what each one is.
_COMPANIONS = {
    "": "the database being exported",
    "-wal": "the write-ahead log of the database being exported",
    "-shm": "the shared-memory index of the database being exported",
    "-journal": "the rollback journal of the database being exported",
}


def check_target(path: Path, db_path: Path) -> None:
    """Raise :class:`ExportTargetError` if writing ``path`` would overwrite ``db_path`` or a companion.

    Compared by resolved path (symlinks followed, so companions that do not
    exist yet count too) and by device and inode (hard links, bind mounts).
    Companions are looked for beside the path given and beside the resolved
    one: SQLite names them after the file it opened.
    """
    target = path.resolve()
    try:
        found = path.stat()
    except OSError:
        found = None
    for base in dict.fromkeys((str(db_path.absolute()), str(db_path.resolve()))):
        for suffix, role in _COMPANIONS.items():
            name = Path(base + suffix)
            if target == name.resolve() or (found is not None and _same_file(found, name)):
                raise ExportTargetError(f"refusing to write {path}: it is {role} ({db_path})")


def _same_file(found: os.stat_result, name: Path) -> bool:
    try:
        other = name.stat()
    except OSError:
        return False
    return (found.st_dev, found.st_ino) == (other.st_dev, other.st_ino)


def export_to_path(
    db: sqlite_utils.Database,
    path: Path,
    fmt: Format,
    *,
    db_path: Path,
    session_id: int | None = None,
    filter_text: str = "",
    ids: Sequence[int] | None = None,
    meta: bool = False,
    base_url: str = DEFAULT_BASE_URL,
    mask: bool = False,
) -> ExportReport:
    """:func:`export` into the file ``path``, which ends complete or untouched, never half-written.

    Refuses the database ``db`` reads and its companions
    (:class:`ExportTargetError`). A regular file is written beside ``path``
    under a temporary name, synced, then renamed over it: a bad filter, a full
    disk, Ctrl-C or a corrupt database leaves an existing file as it was and no
    temporary file behind. A symlink keeps pointing where it did (its target is
    replaced) and an existing file keeps its permissions. A device or a pipe
    (``/dev/null``, ``/dev/stdout``, a FIFO) is written directly, as a stream.
    """
    check_target(path, db_path)
    options: dict[str, Any] = {
        "session_id": session_id, "filter_text": filter_text, "ids": ids, "meta": meta, "base_url": base_url,
        "mask": mask,
    }  # fmt: skip
    try:
        mode: int | None = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with path.open("wb") as stream:
            return export(db, stream, fmt, **options)
    final = path.resolve()
    descriptor, temporary = _create_beside(final)
    try:
        with os.fdopen(descriptor, "wb") as out:
            if mode is not None:
                os.fchmod(out.fileno(), stat.S_IMODE(mode))
            report = export(db, out, fmt, **options)
            os.fsync(out.fileno())
        temporary.replace(final)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return report


def _create_beside(final: Path) -> tuple[int, Path]:
    """A new, empty file in ``final``'s folder (a rename there is atomic), with open()'s default mode."""
    while True:
        temporary = final.with_name(f".{final.name[:200]}.{secrets.token_hex(4)}.part")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary
        except FileExistsError:
            continue


class _Sink:
    """Collects small writes and hands ``out`` about a megabyte at a time."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)
        if self.size >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.parts:
            self.out.write(b"".join(self.parts))
            self.parts, self.size = [], 0
        self.out.flush()


def _bytes(body: Any) -> bytes:
    if isinstance(body, bytes):
        return body
    return b"" if body is None else str(body).encode("utf-8", "surrogatepass")


def _plain_line(row_id: int, body: bytes, report: ExportReport) -> bytes | None:
    if b"\n" not in body:
        report.exported += 1
        return body + b"\n"
    compact = compact_json(body)
    noted = report.skipped_ids if compact is None else report.reformatted_ids
    if len(noted) < _MAX_NOTED:
        noted.append(row_id)
    if compact is None:
        report.skipped += 1
        return None
    report.exported += 1
    report.reformatted += 1
    return compact + b"\n"


#: Digits enough for an integer beyond 64 bits (or a long fraction): :func:`masked_json` leaves it to the stdlib.
_LONG_NUMBER = re.compile(rb"\d{19}")


def masked_json(body: bytes) -> bytes | None:
    """``body`` parsed, every value under a personal key masked, as compact JSON; None when it is not JSON.

    A leading BOM is dropped. orjson reads and writes the usual body (several
    times faster); a body with 19 digits in a row (an integer orjson would
    round to a float), or that orjson refuses (NaN, a lone surrogate escape),
    goes through the stdlib, which keeps it exactly.
    """
    text = body.removeprefix(b"\xef\xbb\xbf")
    if _LONG_NUMBER.search(text) is None:
        try:
            return json_safe(orjson.dumps(mask_json(orjson.loads(text))))
        except orjson.JSONDecodeError:
            pass
    try:
        value = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    dumped = json.dumps(mask_json(value), ensure_ascii=False, separators=(",", ":"))
    return json_safe(dumped.encode("utf-8", "surrogatepass"))


def hidden_body(body: bytes) -> bytes:
    """What a masked export writes for a body that is not JSON: a placeholder that says so, never its bytes."""
    return f"[body not JSON ({count(len(body), 'byte')}): hidden, personal data is masked]".encode()


def masked_body(body: bytes) -> bytes:
    """``body`` for a masked export: :func:`masked_json`, else :func:`hidden_body`."""
    found = masked_json(body)
    return hidden_body(body) if found is None else found


def masked_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers for a masked export: credentials (``Authorization: Basic ...``) keep only their scheme."""
    return redact_headers(headers.items())


def _masked(row_id: int, body: bytes, report: ExportReport) -> bytes:
    """:func:`masked_body`, counting (and noting the first ids of) the bodies hidden."""
    found = masked_json(body)
    if found is not None:
        return found
    report.hidden += 1
    if len(report.hidden_ids) < _MAX_NOTED:
        report.hidden_ids.append(row_id)
    return hidden_body(body)


def compact_json(body: bytes) -> bytes | None:
    """``body`` as compact one-line JSON (a leading BOM kept), or None when it is not JSON.

    The stdlib, not orjson: it keeps integers beyond 64 bits exactly.
    """
    bom = b"\xef\xbb\xbf" if body.startswith(b"\xef\xbb\xbf") else b""
    try:
        value = json.loads(body[len(bom) :].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return bom + json_safe(
        json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
    )


#: What JSON may carry raw but a terminal would obey, or that hides or reorders
#: text: DEL, C1 controls, the soft hyphen, bidi marks, overrides and isolates,
#: invisible format characters, tag characters (JSON encoders escape C0 already).
_JSON_UNSAFE = re.compile(
    "[\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff\ufff9-\ufffb\U000e0000-\U000e007f]"
)


def json_safe(data: bytes) -> bytes:
    """JSON text with those characters written as ``\\uXXXX`` escapes: the same JSON value, byte-safe to show.

    They can only occur inside strings (JSON's own syntax is ASCII), where an
    escape means the same character. Bytes that are not UTF-8 (a lone
    surrogate that ``surrogatepass`` wrote) are returned as they are.
    """
    if data.isascii() and b"\x7f" not in data:  # the usual line: nothing to look for
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data
    if _JSON_UNSAFE.search(text) is None:
        return data
    return _JSON_UNSAFE.sub(_json_escape, text).encode("utf-8")


def _json_escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code > 0xFFFF:  # outside the BMP: a UTF-16 surrogate pair, as JSON spells it
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def meta_record(row: Mapping[str, Any], *, mask: bool = False) -> dict[str, Any]:
    """One ``jsonl --meta`` object for a delivery row (``headers`` as stored JSON or a dict).

    ``mask``: credentials in the headers keep only their scheme; the body is
    taken as given (:func:`export` masks it first).
    """
    record = {key: row.get(key) for key in META_KEYS}
    record["headers"] = masked_headers(headers_of(row)) if mask else headers_of(row)
    body = _bytes(row.get("body"))
    try:
        record["body_text"] = body.decode("utf-8")
    except UnicodeDecodeError:
        record["body_base64"] = base64.b64encode(body).decode("ascii")
    return record


def headers_of(row: Mapping[str, Any]) -> dict[str, str]:
    """The delivery's headers as a dict, whether stored as JSON text or already decoded."""
    value = row.get("headers")
    if isinstance(value, str | bytes):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {str(name): str(text) for name, text in value.items()}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def csv_columns(db: sqlite_utils.Database) -> list[str]:
    """Every events column except the body and headers, in schema order."""
    have = set(db.table("events").columns_dict)
    return [name for name in EVENTS_COLUMNS if name in have and name not in ("body", "headers")]


def _csv(db: sqlite_utils.Database, sink: _Sink, selection: dict[str, Any], report: ExportReport) -> None:
    columns = csv_columns(db)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    for row in queries.export_rows(db, columns, **selection):
        if report.masked:
            row = tuple(mask_if(name, value, True) for name, value in zip(columns, row, strict=True))
        writer.writerow(_csv_row(row))
        report.exported += 1
        if buffer.tell() >= _CHUNK:
            sink.write(buffer.getvalue().encode("utf-8", "surrogatepass"))
            buffer.seek(0)
            buffer.truncate()
    sink.write(buffer.getvalue().encode("utf-8", "surrogatepass"))


#: What a spreadsheet takes as the start of a formula (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: Any) -> Any:
    """A CSV cell that is inert in a terminal and in a spreadsheet.

    Numbers stay numbers (a negative amount is not a formula). Text goes through
    :func:`monitor.textsafe.clean`, as on screen: control, bidi and invisible
    characters become visible stand-ins (a newline too, so one row is one line);
    then text a spreadsheet would run as a formula (``=HYPERLINK(...)``,
    ``+``, ``-``, ``@``) gets a leading single quote.
    """
    if value is None or isinstance(value, int | float):
        return value
    text = clean(value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))
    return "'" + text if text.startswith(_FORMULA_START) else text


def _csv_row(row: Sequence[Any]) -> list[Any]:
    """:func:`csv_cell` of each value; plain printable ASCII text, numbers and NULLs pass as they are.

    The shortcut halves the cost of the cells (0.4 s instead of 0.9 s for
    20,000 generated rows, where writing the CSV itself takes about 1 s).
    """
    return [
        value
        if value is None
        or value.__class__ in (int, float)
        or (value.__class__ is str and value.isascii() and value.isprintable() and not value.startswith(_FORMULA_START))
        else csv_cell(value)
        for value in row
    ]


_HAR_COLUMNS = ("id", "session_id", "received_at", "method", "path", "headers", "content_type", "body", "signature")


def _har(db: sqlite_utils.Database, sink: _Sink, selection: dict[str, Any], report: ExportReport) -> None:
    creator = {"name": "conscent-monitor", "version": __version__}
    head = orjson.dumps({"version": "1.2", "creator": creator})
    sink.write(b'{"log":' + head[:-1] + b',"entries":[\n')
    for row in queries.export_rows(db, _HAR_COLUMNS, **selection):
        if report.exported:
            sink.write(b",\n")
        entry = dict(zip(_HAR_COLUMNS, row, strict=True))
        if report.masked:
            entry["body"] = _masked(entry["id"], _bytes(entry["body"]), report)
        sink.write(json_safe(orjson.dumps(har_entry(entry, mask=report.masked))))
        report.exported += 1
    sink.write(b"\n]}}\n")


def har_entry(row: Mapping[str, Any], *, mask: bool = False) -> dict[str, Any]:
    """One HAR 1.2 entry: the request as received and the answer the listener gave.

    ``mask``: credentials in the headers keep only their scheme; the body is
    taken as given (:func:`export` masks it first).
    """
    headers = masked_headers(headers_of(row)) if mask else headers_of(row)
    path = _path(row)
    host = _header(headers, "Host") or "127.0.0.1"
    body = _bytes(row.get("body"))
    post: dict[str, Any] = {"mimeType": row.get("content_type") or _header(headers, "Content-Type") or ""}
    try:
        post["text"] = body.decode("utf-8")
    except UnicodeDecodeError:  # HAR has no encoding field for requests; "_encoding" is ours
        post["text"], post["_encoding"] = base64.b64encode(body).decode("ascii"), "base64"
    answer = orjson.dumps({"ok": True, "id": row.get("id")}).decode()
    return {
        "startedDateTime": iso_time(float(row.get("received_at") or 0)),
        "time": 0,
        "request": {
            "method": row.get("method") or "POST",
            "url": f"http://{host}{path}",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [{"name": name, "value": value} for name, value in headers.items()],
            "queryString": [{"name": k, "value": v} for k, v in parse_qsl(urlsplit(path).query, True)],
            "postData": post,
            "headersSize": -1,
            "bodySize": len(body),
        },
        "response": {
            "status": 200,
            "statusText": "OK",
            "httpVersion": "HTTP/1.1",
            "cookies": [],
            "headers": [{"name": "Content-Type", "value": "application/json"}],
            "content": {"size": len(answer), "mimeType": "application/json", "text": answer},
            "redirectURL": "",
            "headersSize": -1,
            "bodySize": len(answer),
        },
        "cache": {},
        "timings": {"send": 0, "wait": 0, "receive": 0},
        "_id": row.get("id"),
        "_session": row.get("session_id"),
        "_signature": row.get("signature"),
    }


def iso_time(seconds: float) -> str:
    """ISO 8601 in UTC with milliseconds, as HAR tools write it."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _path(row: Mapping[str, Any]) -> str:
    path = str(row.get("path") or "/")
    return path if path.startswith("/") else "/" + path


_CURL_COLUMNS = ("id", "received_at", "method", "path", "headers", "body", "event")


def _curl_script(
    db: sqlite_utils.Database, sink: _Sink, selection: dict[str, Any], report: ExportReport, base_url: str
) -> None:
    how = (
        b"with personal data masked (bodies are not the bytes received; signatures will not match)"
        if report.masked
        else b"replayed byte for byte (body and headers)"
    )
    sink.write(b"#!/usr/bin/env bash\n# Deliveries recorded by conscent-monitor, " + how + b".\nset -u\n")
    for row in queries.export_rows(db, _CURL_COLUMNS, **selection):
        delivery = dict(zip(_CURL_COLUMNS, row, strict=True))
        when = iso_time(float(delivery.get("received_at") or 0))
        event = _comment(str(delivery.get("event") or ""))
        sink.write(f"\n# delivery {delivery['id']} · {event} · received {when}\n".encode("utf-8", "replace"))
        body = _bytes(delivery["body"])
        if report.masked:
            body = _masked(delivery["id"], body, report)
        command = _curl(delivery, body, base_url, mask=report.masked)
        sink.write(command.encode("utf-8", "surrogatepass") + b"\necho\n")
        report.exported += 1


def curl_command(delivery: Mapping[str, Any], base_url: str = DEFAULT_BASE_URL, *, mask: bool = False) -> str:
    """A bash command that sends ``delivery`` again: same method, path, headers and exact body.

    ``delivery`` is a row of ``events`` (``headers`` as JSON text or a dict,
    ``body`` as bytes), e.g. from :func:`monitor.queries.get_delivery`. Headers
    that curl computes (Host, Content-Length, ...) are left to curl; curl's own
    defaults the delivery did not have are removed. A redacted credential
    cannot be replayed: it is left out, with a comment saying what to add.

    ``mask``: the body is :func:`masked_body` (a comment says so: a signature
    header will not match it) and credentials are redacted.
    """
    body = _bytes(delivery.get("body"))
    return _curl(delivery, masked_body(body) if mask else body, base_url, mask=mask)


def _curl(delivery: Mapping[str, Any], body: bytes, base_url: str, *, mask: bool) -> str:
    """:func:`curl_command` sending ``body`` (under ``mask``, already masked)."""
    recorded = headers_of(delivery)
    headers = masked_headers(recorded) if mask else recorded
    url = base_url.rstrip("/") + _path(delivery)
    comments: list[str] = []
    if mask:
        comments.append(f"# body masked (personal data hidden): its {SIGNATURE_HEADER} will not match it")
    method = shell_quote(str(delivery.get("method") or "POST"))
    # --globoff: "[1-3]" or "{a,b}" in a path is one request, not a glob; --path-as-is keeps "/../".
    parts = [f"curl -sS -X {method} --globoff --path-as-is {shell_quote(url)}"]
    sent: set[str] = set()
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in HOP_BY_HOP:
            continue
        if REDACTED in value:
            hint = "add -u KEY:SECRET" if lowered == "authorization" else f"add -H '{_comment(name)}: ...'"
            when = "when recorded" if REDACTED in recorded.get(name, REDACTED) else "in this masked export"
            comments.append(f"# {_comment(name)} was redacted {when}: {hint}")
            continue
        if any(char in name + value for char in "\r\n\0") or not name.strip() or ":" in name:
            comments.append(f"# header {_comment(name)} cannot be sent by curl; left out")
            continue
        # "Name;" sends an empty header; "Name:" would remove it.
        parts.append("-H " + shell_quote(f"{name}: {value}" if value else f"{name};"))
        sent.add(lowered)
    parts += [f"-H '{name}:'" for name in _CURL_DEFAULTS if name.lower() not in sent]
    quoted = ansi_c_quote(body)
    if b"\0" in body or len(quoted) > _MAX_ARGUMENT:
        parts[0] = f"printf {printf_quote(body)} |\n  {parts[0]}"
        parts.append("--data-binary @-")
    else:
        parts.append("--data-binary " + quoted)
    command = " \\\n  ".join(parts)
    return "\n".join([*comments, command])


def _comment(text: str) -> str:
    return "".join(char if char.isprintable() else "?" for char in text)


def ansi_c_quote(data: bytes | str) -> str:
    """``$'...'`` that bash turns into exactly ``data`` (a NUL byte would end it)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    return "$'" + "".join(map(_ANSI_C.__getitem__, raw)) + "'"


def printf_quote(data: bytes) -> str:
    """A single-quoted format for bash's builtin ``printf`` that prints exactly ``data`` (NULs too)."""
    return "'" + "".join(map(_PRINTF.__getitem__, data)) + "'"


def shell_quote(text: str) -> str:
    """A bare word, single quotes when ``text`` is plain printable ASCII, else ANSI-C quoting."""
    if text.isalnum() and text.isascii():
        return text
    if all(" " <= char <= "~" and char not in "'\\" for char in text):
        return f"'{text}'"
    return ansi_c_quote(text)


def _escapes(specials: dict[str, str]) -> list[str]:
    """How to write each byte: printable ASCII as itself, the rest as ``\\xHH``."""
    table = [chr(byte) if 0x20 <= byte <= 0x7E else f"\\x{byte:02x}" for byte in range(256)]
    for char, escaped in specials.items():
        table[ord(char)] = escaped
    return table


_ANSI_C = _escapes({"\\": "\\\\", "'": "\\'"})
_PRINTF = _escapes({"\\": "\\\\", "'": "\\x27", "%": "%%"})
