"""The filter cases of bench/scale.py: every field of the filter language alone, free text, and pairs of fields.

Values are read from the database (the same file, before any tree opened it
for its schema, gives both trees the same cases): the newest row holding the
column, so every case names something that exists. Run ``python -m
bench.scale_cases DB`` to see them.
"""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
from pathlib import Path

#: The reader of the drill-down with 10,000 events (added to the benchmark's copies, see bench/scale.py).
BIG_READER = "0123456789abcdef01234567"

#: Per field of ``monitor.filters.FIELDS``: its cases (``{name}`` is a value read by :func:`pick_values`).
FIELD_CASES: dict[str, tuple[str, ...]] = {
    "event": ("event:view",),
    "user": ("user:{user_id}", "user:{first_name}", "user:{email}"),
    "content": ("content:{content_word}",),
    "country": ("country:{country}",),
    "device": ("device:{device}",),
    "sig": ("sig:{sig}",),
    "auth": ("auth:{auth}",),
    "action": ("action:{action}",),
    "paywall": ("paywall:{paywall}",),
    "session": ("session:{session}",),
    "anon": ("anon:{anon}",),
    "phone": ("phone:{phone}",),
    "name": ("name:{first_name}",),
    "city": ("city:{city_word}",),
    "path": ("path:{path}",),
    "method": ("method:{method}",),
    "note": ("note:{note}",),
    "forward": ("forward:failed",),
    "dup": ("dup:yes",),
    "kind": ("kind:{kind}",),
    "id": ("id:{id_from}..{id_to}",),
    "since": ("since:{since}",),
    "until": ("until:{until}",),
    "lag": ("lag>5s",),
    "status": ("status:4xx",),
    "reason": ("reason:{reason}",),
}

#: Free text: a word's prefix as typed so far, and a whole word.
TEXT_CASES = ("{prefix}", "{word}")

#: Two fields (or a field and free text) together: ANDed, negated, ORed.
COMBO_CASES = (
    "content:{content_word} -device:{device}",
    "city:{city_word} event:view",
    "user:{first_name} since:30d",
    "action:{action} device:{device}",
    "lag>5s city:{city_word}",
    "-city:{city_word} event:close",
    "name:{first_name} OR phone:{phone}",
    "name:{first_name} country:{country}",
    "{prefix} event:view",
    "user:{user_id} since:{since}",
    "paywall:{paywall} action:{action}",
    "dup:yes event:view",
    "device:{device} until:{until}",
    "anon:{anon} -event:view",
)


def _quoted(value: str) -> str:
    """A value as a person would type it: in quotes when it holds a space or a quote."""
    if value and not re.search(r'[\s"]', value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _word(text: str, shortest: int = 4) -> str:
    """The first word of ``text`` (letters only) with at least ``shortest`` letters, else its first word."""
    words = re.findall(r"[A-Za-z]+", text)
    return next((w for w in words if len(w) >= shortest), words[0] if words else text)


def _prefix(word: str) -> str:
    """What a person has typed of ``word`` so far: its first 4 letters, fewer for a short word."""
    return word[: min(4, max(len(word) - 1, 1))]


#: Bumped when :func:`pick_values` changes (bench/scale.py keeps the values of a database).
VALUES_VERSION = 3


def pick_values(db_path: Path) -> dict[str, str]:
    """Values that exist in the database: the newest row's, for each column the cases use."""
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:

        def latest(column: str, where: str = "1", default: str = "") -> str:
            row = conn.execute(
                f"SELECT {column} FROM events WHERE {column} IS NOT NULL AND {column} != '' AND {where} "
                "ORDER BY id DESC LIMIT 1"
            ).fetchone()
            return str(row[0]) if row else default

        top = conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0

        def day_at(fraction: float) -> str:
            row = conn.execute(
                "SELECT received_at FROM events WHERE id >= ? ORDER BY id LIMIT 1", (int(top * fraction),)
            )
            found = row.fetchone()
            return time.strftime("%Y-%m-%d", time.localtime(found[0] if found else time.time()))

        city = latest("city")
        # Not the generated "Client-Story-Id-2": "client" is in every body (a JSON key), a word nobody searches for.
        content = latest("content_id", "content_id NOT LIKE 'client%'")
        reasons = conn.execute("SELECT reason FROM rejected WHERE reason != '' ORDER BY id DESC LIMIT 1").fetchone()
        values = {
            "user_id": latest("user_id", f"event = 'payment_gateway.view' AND user_id != '{BIG_READER}'"),
            "first_name": _word(latest("name"), 3),
            "email": latest("email"),
            "content_word": _word(content.replace("-", " ")),
            "country": latest("country_code"),
            "device": latest("device_type"),
            "sig": latest("signature", default="valid"),
            "auth": latest("basic_auth", default="valid"),
            "action": latest("click_action").lower(),
            "paywall": latest("paywall_id"),
            "session": latest("gateway_session_id"),
            "anon": latest("anon_id"),
            "phone": latest("phone_number"),
            "city_word": _word(city).lower(),
            "path": latest("path", default="/"),
            "method": latest("method", default="post").lower(),
            "note": _word(latest("notes", default="expected")),
            "kind": latest("kind", default="event"),
            "id_from": str(top // 2),
            "id_to": str(top // 2 + max(top // 100, 1)),
            "since": day_at(0.75),
            "until": day_at(0.25),
            "reason": _word(reasons[0]) if reasons else "signature",
            "prefix": _prefix(_word(city).lower()),
            "word": _word(content.replace("-", " ")).lower(),
        }
    finally:
        conn.close()
    return {key: _quoted(value) for key, value in values.items()}


def cases(values: dict[str, str], fields: list[str]) -> list[dict[str, str]]:
    """``{"group", "filter"}`` for every field in ``fields``, free text and the pairs."""
    out = []
    for field in fields:
        for template in FIELD_CASES.get(field, ()):
            out.append({"group": field, "filter": template.format(**values)})
    out += [{"group": "text", "filter": t.format(**values)} for t in TEXT_CASES]
    out += [{"group": "pair", "filter": t.format(**values)} for t in COMBO_CASES]
    return out


if __name__ == "__main__":
    picked = pick_values(Path(sys.argv[1]))
    print(json.dumps(cases(picked, list(FIELD_CASES)), indent=1))
