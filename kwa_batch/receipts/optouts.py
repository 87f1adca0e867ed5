"""Opt-outs: who asked not to be messaged any more, when, and how, from the callback store.

Sending to someone who opted out breaches WhatsApp's policy and lowers the business
number's quality rating. The :class:`~kwa_batch.Receiver` stores what tells us:

- **a reply that is an opt-out keyword** as the whole message (``STOP``, ``Unsubscribe``,
  ``stop all``, ``PARAR``, ``ABMELDEN``…: case, accents as written, surrounding spaces and
  punctuation ignored; "please stop the deliveries" is not one);
- **the tap of a "Stop promotions" quick-reply button** (WhatsApp's marketing opt-out
  button, in the languages listed): its text is a keyword, and its payload is compared
  too (``STOP_PROMOTIONS`` reads as ``stop promotions``: ``_``, ``-`` and ``.`` as spaces);
- **a status callback ``failed`` with WhatsApp's 131050** (the user stopped marketing
  messages from this business).

A later reply that is a start keyword (``START``, ``UNSTOP``…, or a button whose text or
payload is one) lifts every opt-out before it.

Numbers are read as recipients are (E.164), and WhatsApp's ``wa_id`` forms as the number
they stand for (:func:`~kwa_batch.validation.phones.wa_id_forms`: ``5215512345678`` is
``+52 55 1234 5678``, ``551187654321`` is ``+55 11 98765 4321``), so that a STOP and a
later START, or a reply and a 131050 failure, of one person are counted as one. An opt-out
whose number cannot be read is never dropped quietly: it is logged as a warning and kept in
``attrs["unreadable"]`` of the frame.

:class:`OptOutSource` is a store as a suppression source that is read again at each call
(``validate(suppress=OptOutSource(path))``; the CLI's ``--suppress STORE``): a store with no
opt-outs yet is a live source, not an empty list.

Example:
    >>> opt_outs("receipts.db")  # doctest: +SKIP
              number              opted_out_at    how detail
    0  +919876543210 2026-11-30 14:02:11+00:00  reply   STOP
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..database import is_database_url
from ..validation.suppression import normalize_suppressed, unreadable_note
from .store import CallbackStore, store_name
from .store import opened_store as _opened_store

__all__ = [
    "OPT_IN_KEYWORDS",
    "OPT_OUT_CODE",
    "OPT_OUT_COLUMNS",
    "OPT_OUT_KEYWORDS",
    "OptOutSource",
    "normalize_reply",
    "opt_outs",
    "stops_and_starts",
]

log = logging.getLogger(__name__)

#: Replies that opt out, compared after :func:`normalize_reply`.
OPT_OUT_KEYWORDS = frozenset(
    {
        # English
        "stop", "stop all", "stopall", "unsubscribe", "cancel", "end", "quit", "opt out",
        "optout", "opt-out", "stop messages", "remove me", "no more",
        # Hindi (Devanagari and as typed in Latin letters)
        "रुको", "बंद", "बंद करो", "बन्द करो", "बंद करें", "band karo", "band kro",
        # Portuguese
        "parar", "pare", "sair", "cancelar", "descadastrar", "não quero", "nao quero",
        # Spanish
        "baja", "darme de baja", "alto", "detener", "no más", "no mas",
        # German
        "stopp", "abmelden", "abbestellen", "austragen",
        # French
        "arrêt", "arret", "arrêter", "arreter", "désabonner", "desabonner", "désinscrire",
        "desinscrire",
        # WhatsApp's marketing opt-out button ("Stop promotions") and its usual equivalents
        "stop promotions", "stop promotion", "stop promos", "stop marketing",
        "प्रमोशन बंद करें", "प्रमोशन बंद करो", "promotion band karo", "promotion band karein",
        "parar promoções", "parar promocoes", "parar promoção", "parar promocao",
        "detener promociones", "parar promociones", "no más promociones", "no mas promociones",
        "werbung stoppen", "werbung abbestellen", "keine werbung",
        "arrêter les promotions", "arreter les promotions", "stop pub", "stop aux promotions",
    }
)  # fmt: skip
#: Replies that opt back in, lifting earlier opt-outs.
OPT_IN_KEYWORDS = frozenset(
    {"start", "unstop", "subscribe", "resume", "iniciar", "começar", "comecar", "anmelden",
     "reprendre", "शुरू", "shuru"}
)  # fmt: skip
#: WhatsApp's code for a message refused because the user stopped marketing messages.
OPT_OUT_CODE = "131050"
#: Columns of :func:`opt_outs`, in order.
OPT_OUT_COLUMNS = ("number", "opted_out_at", "how", "detail")

_TIME = "datetime64[us, UTC]"
# RE2 (run by pyarrow): punctuation, symbols (emoji, skin tones) and emoji joiners at
# either end; combining marks (Devanagari vowel signs) are kept.
_EDGE = r"[\s\p{P}\p{S}\x{FE0F}\x{200D}]+"
_EDGES = rf"^{_EDGE}|{_EDGE}$"


def normalize_reply(values: pd.Series) -> pd.Series:
    """Replies as compared with keywords: NFKC, case-folded, spaces collapsed, and the
    punctuation and emoji around them dropped (``" Stop! 🛑"`` is ``"stop"``).

    >>> normalize_reply(pd.Series(["  STOP ALL. ", "Stop  the van"])).tolist()
    ['stop all', 'stop the van']
    """
    text = values.astype("str").str.normalize("NFKC").str.casefold()
    array = pc.replace_substring_regex(pa.array(text.array), r"\s+", " ")
    array = pc.replace_substring_regex(array, _EDGES, "")
    return pd.Series(pd.array(array, dtype="str"), index=values.index)


def _keywords(words: Iterable[str] | None, default: frozenset[str]) -> set[str]:
    if words is None:
        words = default
    elif isinstance(words, str):
        words = [words]
    return set(normalize_reply(pd.Series(list(words), dtype="str")).dropna())


def _as_payload(values: pd.Series) -> pd.Series:
    """A button payload (or a keyword) as payloads are compared: :func:`normalize_reply`,
    with ``_``, ``-`` and ``.`` read as spaces (``STOP_PROMOTIONS`` is ``stop promotions``)."""
    text = normalize_reply(values)
    array = pc.replace_substring_regex(pa.array(text.array), r"[\s_.\-]+", " ")
    return pd.Series(pd.array(pc.utf8_trim_whitespace(array), dtype="str"), index=values.index)


def stops_and_starts(
    incoming: pd.DataFrame,
    *,
    keywords: Iterable[str] | None = None,
    start_keywords: Iterable[str] | None = None,
) -> tuple[pd.Series, pd.Series]:
    """Which incoming messages opt out, and which opt back in (two boolean columns with
    ``incoming``'s index).

    A message opts out when its ``body`` (a reply's text, a button's text) is a keyword
    after :func:`normalize_reply`, or its ``payload`` (a button's) is one, ``_``, ``-`` and
    ``.`` read as spaces; it opts in likewise with a start keyword (a word in both sets
    opts in).

    Args:
        incoming: the store's incoming messages (``body`` and ``payload`` columns).
        keywords: the opt-out replies (default :data:`OPT_OUT_KEYWORDS`).
        start_keywords: the replies that lift an opt-out (default :data:`OPT_IN_KEYWORDS`).
    """
    stops = _keywords(keywords, OPT_OUT_KEYWORDS)
    starts = _keywords(start_keywords, OPT_IN_KEYWORDS)
    stop_payloads = set(_as_payload(pd.Series(sorted(stops), dtype="str")).dropna())
    start_payloads = set(_as_payload(pd.Series(sorted(starts), dtype="str")).dropna())
    said = _each_distinct(incoming["body"], normalize_reply)
    payload = _each_distinct(incoming["payload"], _as_payload)
    start = said.isin(starts) | payload.isin(start_payloads)
    stop = (said.isin(stops) | payload.isin(stop_payloads)) & ~start
    return stop.astype(bool), start.astype(bool)


def _tapped(incoming: pd.DataFrame) -> pd.Series:
    """Which incoming messages are a button's tap (or a choice): a payload, or that type."""
    kind = incoming["type"].str.strip().str.lower().isin(("button", "interactive"))
    return (incoming["payload"].notna() | kind).astype(bool)


def _each_distinct(values: pd.Series, how: Callable[[pd.Series], pd.Series]) -> pd.Series:
    """``how(values)``, computed once for each distinct value (replies repeat: a million
    "STOP"s and "Yes"es are a few strings)."""
    codes, distinct = pd.factorize(values)
    done = how(pd.Series(distinct, dtype="str")).array
    taken = done.take(codes, allow_fill=True)
    return pd.Series(taken, index=values.index)


def opt_outs(
    store: str | Path | CallbackStore,
    *,
    keywords: Iterable[str] | None = None,
    start_keywords: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Who opted out and is still opted out, from a callback store.

    Args:
        store: the SQLite file a :class:`~kwa_batch.Receiver` writes, a database's URL
            (``postgresql://…``), or an open store.
        keywords: the opt-out replies (default :data:`OPT_OUT_KEYWORDS`); pass
            ``OPT_OUT_KEYWORDS | {"no thanks"}`` to add some.
        start_keywords: the replies that lift an opt-out (default :data:`OPT_IN_KEYWORDS`).

    Returns:
        A frame with :data:`OPT_OUT_COLUMNS`, one row per number (E.164 with ``+``, a
        ``wa_id`` form read as the number it stands for), sorted by number:
        ``opted_out_at`` (UTC; the first opt-out since their last start reply), ``how``
        (``reply``, ``button`` for a tap, or ``131050``) and ``detail`` (the reply as
        written, the button's text, or the error text).
        ``attrs["unreadable"]`` holds the numbers, as stored, of opt-outs that cannot be
        read (logged as a warning too).

    Raises:
        InputError: the store does not exist or is not a callback store.
    """
    found = _opt_outs(store, keywords, start_keywords)
    unreadable = found.attrs["unreadable"]
    if unreadable:
        where = store_name(store)
        log.warning("%s", unreadable_note(unreadable, where), extra={"unreadable": unreadable})
    return found


def _opt_outs(
    store: str | Path | CallbackStore,
    keywords: Iterable[str] | None,
    start_keywords: Iterable[str] | None,
) -> pd.DataFrame:
    with _opened_store(store) as opened:
        incoming = opened.incoming_messages()
        updates = opened.status_updates()
    stop, start = stops_and_starts(incoming, keywords=keywords, start_keywords=start_keywords)
    replies = pd.DataFrame(
        {
            "number": incoming["customer"],
            "at": incoming["at"],
            "how": _tapped(incoming).map({True: "button", False: "reply"}),
            "detail": incoming["body"].fillna(incoming["payload"]).str.strip(),
            "start": start,
        }
    )
    replies = replies[stop.to_numpy() | start.to_numpy()]
    failed = (updates["status"] == "failed") & (updates["error_code"].str.strip() == OPT_OUT_CODE)
    failed = failed.fillna(False).astype(bool)
    unknown = failed & updates["recipient"].isna()
    if unknown.any():
        log.warning(
            "%d callback(s) failed with %s without naming the recipient: they cannot be "
            "counted as opt-outs (check the receiver gets 'mobile')",
            int(unknown.sum()),
            OPT_OUT_CODE,
        )
    failures = updates[failed & ~unknown]
    refused = pd.DataFrame(
        {
            "number": failures["recipient"],
            "at": failures["at"],
            "how": OPT_OUT_CODE,
            "detail": failures["error"].fillna("the user stopped marketing messages"),
            "start": False,
        }
    )
    events = pd.concat([replies, refused], ignore_index=True)
    events = events.astype({"number": "str", "how": "str", "detail": "str", "start": bool})
    events["at"] = pd.to_datetime(events["at"], utc=True).astype(_TIME)
    # One person, one number: as recipients are normalised, wa_id forms included.
    numbers = normalize_suppressed(events["number"])["e164"]
    lost = numbers.isna().to_numpy()
    unreadable = tuple(dict.fromkeys(events["number"][lost & ~events["start"].to_numpy()]))
    events = events[~lost].assign(number=numbers[~lost].astype("str"))
    last_start = events[events["start"]].groupby("number")["at"].max()
    events = events[~events["start"]]
    started = last_start.reindex(pd.Index(events["number"])).to_numpy()
    lifted = (events["at"].to_numpy() <= started) & ~pd.isna(started)
    events = events[~lifted]
    first = events.sort_values(["number", "at"], kind="stable").drop_duplicates("number")
    out = first.rename(columns={"at": "opted_out_at"})[list(OPT_OUT_COLUMNS)]
    out = out.reset_index(drop=True)
    out.attrs["unreadable"] = unreadable
    return out


class OptOutSource:
    """A callback store as a suppression source that is read again at each call: the
    opt-outs of the moment, for a run that re-reads its suppression list while it sends.

    A store with no opt-outs yet is fine (STOP replies may come later); a path that is no
    callback store is refused at the first read. Warnings about opt-outs whose number
    cannot be read are logged once for each new one, however often the store is read.

    Args:
        path: the SQLite file a :class:`~kwa_batch.Receiver` writes, or a database's URL.
        keywords: as for :func:`opt_outs`.
        start_keywords: as for :func:`opt_outs`.

    Example:
        >>> source = OptOutSource("receipts.db")
        >>> source
        OptOutSource('receipts.db')
        >>> kb.validate(df, suppress=source)  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        *,
        keywords: Iterable[str] | None = None,
        start_keywords: Iterable[str] | None = None,
    ) -> None:
        on_database = is_database_url(path)
        self.target: str | Path = str(path).strip() if on_database else Path(path)
        self.path: Path | None = None if on_database else Path(path)
        self.shown = store_name(self.target)
        self._keywords = keywords
        self._start_keywords = start_keywords
        self._told: set[str] = set()

    def __repr__(self) -> str:
        return f"OptOutSource({self.shown!r})"

    def version(self) -> tuple[tuple[int, int] | None, ...]:
        """A token that changes whenever the store does (a file's size and time and its
        write-ahead log's; a database's row counts): a reader that polls can skip a read
        when it is unchanged."""
        if self.path is None:
            with _opened_store(self.target) as opened:
                return (opened.version(),)
        found: list[tuple[int, int] | None] = []
        for path in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                stat = path.stat()
            except OSError:
                found.append(None)
            else:
                found.append((stat.st_size, stat.st_mtime_ns))
        return tuple(found)

    def opt_outs(self) -> pd.DataFrame:
        """The store's opt-outs now, as :func:`opt_outs` gives them (the store is opened
        for this read and closed after it).

        Raises:
            InputError: the store does not exist or is not a callback store.
        """
        found = _opt_outs(self.target, self._keywords, self._start_keywords)
        new = [v for v in found.attrs["unreadable"] if v not in self._told]
        if new:
            self._told.update(new)
            log.warning("%s", unreadable_note(new, self.shown), extra={"unreadable": tuple(new)})
        return found
