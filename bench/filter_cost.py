"""What the worst filters the language allows cost the main screen.

For each filter: compile it for both tables, then do what the main screen does
on Enter, in gateway and in all-events mode: count the view's rows and read
its first page (100 rows). Prints one line per filter and mode, in seconds.

    python -m bench.filter_cost DB [NAME ...]

Make a database with ``conscent-monitor generate --db DB --count 100000``
(``generate`` leaves the search index empty: every free-text term then scans
every body). ``--index`` builds the index first, as ``import`` and a running
monitor do.
"""

from __future__ import annotations

import argparse
import string
import time

from monitor import queries, store
from monitor.filters import MAX_LENGTH, MAX_TERMS, MAX_WORDS, FilterError, compile_filter

#: Words in (nearly) every body: JSON keys and the gateway's own words.
COMMON = [
    "user", "payload", "address", "apartment", "area", "city", "client", "contains", "country", "created",
    "devicetype", "entity", "event", "id", "info", "landmark", "latitude", "location", "longitude", "pincode",
    "postcode", "state", "userid", "username", "mozilla", "safari", "gecko", "india", "payment", "gateway",
    "view", "android", "chrome",
]  # fmt: skip
#: Three-letter starts of the common words: each expands to many indexed words.
PREFIXES = list(dict.fromkeys(word[:3] for word in COMMON))


def largest_filter(terms: list[str], joiner: str = " ") -> str:
    """As many of ``terms`` (cycled) joined as the filter limits allow (the tests use it too)."""
    text = ""
    for term in terms * MAX_TERMS:
        candidate = f"{text}{joiner}{term}" if text else term
        try:
            compile_filter(candidate)
        except FilterError:
            break
        text = candidate
    return text


FILTERS = {
    "or-rare": largest_filter([f"zq{n}x" for n in range(MAX_TERMS)], " OR "),
    "or-common": largest_filter(COMMON, " OR "),
    "and-common": largest_filter(COMMON),
    "not-common": largest_filter([f"-{word}" for word in COMMON]),
    "or-prefixes": largest_filter(PREFIXES, " OR "),
    "and-prefixes": largest_filter(PREFIXES),
    "mixed-or": largest_filter([f"{word} OR city:{word}" for word in COMMON], " "),
    "or-letters": largest_filter(list(string.ascii_lowercase + string.digits), " OR "),
    "long-phrases": largest_filter([f'"{" ".join(COMMON[n : n + 4])}"' for n in range(MAX_TERMS)]),
    "one-phrase": '"' + " ".join(COMMON[:MAX_WORDS] * 10)[: MAX_LENGTH - 2].rsplit(" ", 1)[0] + '"',
    "fields": largest_filter([f"user:{word}" for word in COMMON]),
}


def measure(db_path: str, names: list[str], repeat: int = 3) -> None:
    db = store.connect(db_path, readonly=True)
    rows = db.execute("SELECT count(*) FROM events").fetchone()[0]
    upto = db.execute("SELECT indexed_upto FROM search_state").fetchone()[0]
    print(f"{db_path}: {rows:,} events, search index up to #{upto:,}")
    for name in names or list(FILTERS):
        text = FILTERS[name]
        try:
            events, rejected = compile_filter(text, table="events"), compile_filter(text, table="rejected")
        except FilterError as exc:
            print(f"  {name:13} refused: {exc.message}")
            continue
        for mode in ("gateway", "all"):
            view = queries.View(mode, None, events.where, events.params, rejected.where, rejected.params)
            took = []
            for _ in range(repeat):  # the best of a few: the machine may be shared
                started = time.perf_counter()
                total = queries.count_rows(db, view)
                queries.fetch_rows(db, view, 0, 100, total=total)
                took.append(time.perf_counter() - started)
            print(f"  {name:13} {mode:7} {len(text):5} chars {total:7,} rows {min(took):7.3f} s")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("db")
    parser.add_argument("names", nargs="*", help=f"filters to time (default: all): {', '.join(FILTERS)}")
    parser.add_argument("--index", action="store_true", help="build the search index first")
    parser.add_argument("--repeat", type=int, default=3, help="runs per filter and mode; the best is shown")
    args = parser.parse_args()
    unknown = sorted(set(args.names) - set(FILTERS))
    if unknown:
        parser.error(f"no filter named {', '.join(unknown)}")
    if args.index:
        db = store.connect(args.db)
        while store.index_pending(db.conn, 5000):
            pass
        db.close()
    measure(args.db, args.names, args.repeat)


if __name__ == "__main__":
    main()
