"""Finding events by a phone typed in any format and by text in their body.

A phone: mappings store a delivery's phone as `919822012345` (digits) or `+919822012345`
(e164), never otherwise (relay/mapping/phone.py). A number typed in any format that reads as
a valid number (`+91 98220 12345`, `09822012345` or `9822012345` for a mapping of region IN)
is looked up by those two stored forms, through the index `deliveries_phone`. Anything else
typed (a few digits) is looked for as digits within stored phones: a scan, slower on a big
history, and said so in the README.

Text: at least MIN_TEXT characters, found anywhere in the raw body, case-insensitively (for
ASCII letters on PostgreSQL), every character literal (`%`, `_`, quotes). Both backends ask a
table `events_search` that the worker keeps after the webhooks' commits (`index_search`),
and read the few events above its mark, not indexed yet, directly: SQLite's is FTS5 with the
trigram tokenizer (migration 0009); PostgreSQL's holds each body as `encode(body, 'escape')`
spells it, under a pg_trgm index that serves ILIKE '%text%' (0015), with the text spelled the
same way; there the indexed events and the others are two queries (history.events_query).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import phonenumbers
import sqlalchemy as sa

from relay.errors import RelayError
from relay.store.tables import deliveries, events, events_search, instance

MIN_TEXT = 3  # a trigram: shorter text would match almost everything, and use no index


def phone_terms(typed: str, regions: Iterable[str | None]) -> tuple[tuple[str, ...], str | None]:
    """What `Store.events` looks for when a person types `typed`: the stored forms of every
    valid number it reads as, in the regions of the loaded mappings or with its own `+`
    (`phones`), else its digits within stored phones (`phone`)."""
    forms: list[str] = []
    text = typed.strip()
    if text.startswith("00"):  # as mapping/phone.py reads it: the international prefix
        text = "+" + text[2:]
    for region in dict.fromkeys([*regions, None]):
        try:
            parsed = phonenumbers.parse(text, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(parsed):
            e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            forms += [e164[1:], e164]
    if forms:
        return tuple(dict.fromkeys(forms)), None
    digits = "".join(ch for ch in typed if ch.isdigit())
    return (), digits or None


def search_args(phone: str | None, text: str | None,
                regions: Iterable[str | None]) -> dict[str, Any]:
    """`Store.events`'s keyword arguments for a phone and a text as a person typed them;
    RelayError when the text is too short to search for."""
    found: dict[str, Any] = {}
    if phone and phone.strip():
        found["phones"], found["phone"] = phone_terms(phone, regions)
        if not found["phones"] and not found["phone"]:
            found["phone"] = phone  # no digits at all: matches nothing, as it should
    if text and text.strip():
        found["text"] = check_text(text)
    return found


def check_text(text: str) -> str:
    """The text to search for, or RelayError saying why it cannot be."""
    if "\x00" in text:  # FTS5 would end its string there (and answer an error)
        raise RelayError("search for text without NUL characters (%00)")
    if len(text.strip()) < MIN_TEXT:
        raise RelayError(f"search for at least {MIN_TEXT} characters (got {text.strip()!r})")
    return text.strip()


def phone_clause(phones: tuple[str, ...], digits: str | None) -> sa.ColumnElement[bool]:
    """Events with a delivery to one of `phones`, or whose phone holds `digits` (none when
    the phone typed had no digits at all)."""
    if not phones and not digits:
        return sa.false()
    where = (deliveries.c.phone.in_(phones) if phones
             else deliveries.c.phone.contains(digits or "", autoescape=True))
    # IN (ids of matching deliveries) rather than a correlated EXISTS: the phone index finds
    # the few deliveries, rather than every event being visited newest first.
    return events.c.id.in_(sa.select(deliveries.c.event_id).where(where))


def text_clauses(dialect: str, text: str,
                 page: tuple[int, int | None] | None = None) -> list[sa.ColumnElement[bool]]:
    """Events whose body holds `text` (see the module's docstring): those meeting any one of
    these conditions, each to be asked in a query of its own (history.events_query joins
    their pages). `page` (limit, before): the text is the only filter, so SQLite may take the
    page from its index alone."""
    text = check_text(text)
    indexed = (sa.select(sa.cast(instance.c.value, sa.BigInteger))
               .where(instance.c.key == "search_indexed").scalar_subquery())
    if dialect == "sqlite":
        tail = events.alias("unindexed")
        phrase = '"' + text.replace('"', '""') + '"'  # one FTS5 string: no query syntax
        rowid: sa.ColumnClause[Any] = sa.literal_column("rowid")
        matching: Any = (sa.select(rowid).select_from(sa.table("events_search"))
                         .where(sa.literal_column("events_search").op("MATCH")(phrase)))
        if page is not None:
            # Newest first from the index itself: a text in every body (example.com) costs
            # a page, not every match (SQLite would gather all the matches for IN first).
            limit, before = page
            if before is not None:
                matching = matching.where(rowid < before)
            matching = sa.select(sa.literal_column("rowid")).select_from(
                matching.order_by(rowid.desc()).limit(limit).subquery())
        # And the events the worker has not indexed yet (a second's worth while it runs),
        # read: LIKE ignores the case of ASCII letters, as the trigram index does. A union
        # rather than OR, which SQLite answered by visiting every event.
        unindexed = sa.select(tail.c.id).where(
            tail.c.id > sa.func.coalesce(indexed, 0),
            sa.cast(tail.c.body, sa.Text).contains(text, autoescape=True))
        return [events.c.id.in_(sa.union_all(matching, unindexed))]
    # PostgreSQL: two queries, the indexed events (a plain IN) and the others. A union under
    # IN, or an OR, kept the planner from choosing between walking the events newest first
    # (a text in every body) and asking the trigram index first (a text in a few): with
    # another filter, 0.5 s on 200,000 events (benchmarks/search.py); 1-12 ms as two. The
    # pattern is written into the statement, not bound: psycopg prepares a statement run
    # often, and its plan for any pattern walked every event for a text in one (0.4 s).
    pattern = sa.literal(like_pattern(escape_bytes(text.encode("utf-8", "replace"))),
                         literal_execute=True)
    return [
        events.c.id.in_(sa.select(events_search.c.id)
                        .where(events_search.c.body.ilike(pattern, escape="/"))),
        # Not indexed yet: read, as the bodies' text is spelled in the table.
        sa.and_(events.c.id > sa.func.coalesce(indexed, 0),
                sa.func.encode(events.c.body, sa.literal_column("'escape'"))
                .ilike(pattern, escape="/")),
    ]


def like_pattern(text: str) -> str:
    """LIKE's pattern for `text` anywhere, every character literal (escaped by /)."""
    return "%" + re.sub(r"([/%_])", r"/\1", text) + "%"


def escape_bytes(raw: bytes) -> str:
    """`raw` as PostgreSQL's encode(raw, 'escape') spells it: zero bytes and bytes with the
    high bit set as \\ooo, backslashes doubled."""
    return "".join(f"\\{b:03o}" if b == 0 or b >= 0x80 else "\\\\" if b == 0x5C else chr(b)
                   for b in raw)
