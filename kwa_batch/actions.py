"""The outcome policy: what to do with a row, by the code its outcome carries.

One table, :data:`RULES`, maps every code kwa_batch can meet to an :class:`Action`: its own
codes (:class:`kwa_batch.errors.Code`, from their :class:`~kwa_batch.errors.Policy`),
Kaleyra's v1 and v2 answers, and WhatsApp's codes that arrive in the status callbacks.
:func:`rule_for` looks a code up; a code it does not know is ``final`` with the code kept
as given, never dropped and never retried blindly.

The actions:

========  ================================================================================
done      delivered or read: nothing to do
wait      no final receipt yet (sent, or an answer that may have gone out): wait for it
retry     send the row again, not before ``retry_at`` (gaps grow with each try)
final     nothing will change it: report it, do not retry
suppress  the customer opted out (131050): not for this or any later campaign
stop      nothing more should leave until a person acts (the number or the account)
fix       the payload was wrong: the pre-flight should have refused it; correct the row
========  ================================================================================

A rule's :class:`Scope` says what else it touches: ``row`` (only this row), ``template``
(the template's other rows wait too: paused or disabled) or ``number`` (the sending number
or the account: every row waits).

Sources (as of 2026; they change): WhatsApp Cloud API error codes (Meta's developer docs),
Kaleyra's v1 document and v2 pages, and the third-party practice gathered in
``kaleyra-facts.md`` ("What a bulk sender should do with each outcome"). Where a code's
meaning is recalled rather than confirmed (132015/132016), the rule says so.

Example:
    >>> rule_for("131049").action, rule_for("131049").gaps[0]
    (<Action.RETRY: 'retry'>, datetime.timedelta(days=1))
    >>> rule_for("999999").action
    <Action.FINAL: 'final'>
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from types import MappingProxyType

from .errors import Code, Policy, describe_code, lookup_code

__all__ = [
    "RULES",
    "STOP_CODES",
    "TEMPLATE_CODES",
    "US_MARKETING_PAUSED",
    "Action",
    "Rule",
    "Scope",
    "describe",
    "markdown_table",
    "meaning_of",
    "normal_code",
    "rule_for",
    "rules_table",
]


class Action(StrEnum):
    """What to do with a row after its outcome (see the module's table)."""

    DONE = "done"
    WAIT = "wait"
    RETRY = "retry"
    FINAL = "final"
    SUPPRESS = "suppress"
    STOP = "stop"
    FIX = "fix"


class Scope(StrEnum):
    """What a code touches beyond its own row."""

    ROW = "row"
    TEMPLATE = "template"
    NUMBER = "number"


@dataclass(frozen=True)
class Rule:
    """What a code means and what to do about it.

    Attributes:
        code: the code as the API or the callback gives it (text).
        action: the :class:`Action`.
        scope: what else it touches (:class:`Scope`).
        meaning: what the code says happened, in a few words.
        what_to_do: the one line a person reads next to the row.
        source: who gives it: ``whatsapp``, ``kaleyra v1``, ``kaleyra v2`` or ``kwa_batch``.
        gaps: for ``retry``, the wait before each try after the outcome (the first try
            after ``gaps[0]``, the next after ``gaps[1]``...); past the last, the row is
            ``final``. Empty for the other actions.
    """

    code: str
    action: Action
    scope: Scope
    meaning: str
    what_to_do: str
    source: str
    gaps: tuple[timedelta, ...] = ()

    def gap(self, tries: int) -> timedelta | None:
        """The wait before retry number ``tries`` (1 for the first); None when the retries
        are used up (then the row is final)."""
        if tries < 1 or tries > len(self.gaps):
            return None
        return self.gaps[tries - 1]


_H = timedelta(hours=1)
_M = timedelta(minutes=1)
_WA = "whatsapp"
_V1 = "kaleyra v1"
_V2 = "kaleyra v2"

#: WhatsApp answers 131049 to every marketing template for US numbers (paused since April
#: 2025): for those rows a retry is pointless, the row is ``final``.
US_MARKETING_PAUSED = (
    "WhatsApp has paused marketing templates to US numbers since April 2025: no retry will "
    "deliver it"
)


def _rule(
    code: str,
    action: Action,
    meaning: str,
    what_to_do: str,
    source: str = _WA,
    *,
    scope: Scope = Scope.ROW,
    gaps: tuple[timedelta, ...] = (),
) -> Rule:
    return Rule(code, action, scope, meaning, what_to_do, source, gaps)


_SLOW_DOWN = (1 * _M, 5 * _M, 15 * _M)
_EXTERNAL = (
    # -- WhatsApp (status callbacks; v2 answers carry them too) ------------------------
    _rule("131049", Action.RETRY, "WhatsApp's per-user marketing limit: not a failure",
          "retry later with growing gaps (24 h, 48 h, 96 h), never within 24 h",
          gaps=(24 * _H, 48 * _H, 96 * _H)),
    _rule("131050", Action.SUPPRESS, "the user stopped marketing messages from this business",
          "an opt-out: kept in the receipts store, suppressed for later campaigns"),
    _rule("131026", Action.FINAL, "message undeliverable (not on WhatsApp, or an old app)",
          "no retry: reach the customer another way"),
    _rule("131047", Action.FINAL, "more than 24 h since the customer last wrote",
          "no retry as free text: send an approved template instead"),
    _rule("130472", Action.FINAL, "the customer's number is part of a Meta experiment",
          "no retry"),
    _rule("131021", Action.FIX, "the recipient is the sending number itself",
          "remove the row: a number cannot message itself"),
    _rule("130429", Action.RETRY, "throughput limit of the sending number reached",
          "the rows are not failures: retry after a pause", gaps=_SLOW_DOWN),
    _rule("131056", Action.RETRY, "too many messages to this customer in a short time",
          "retry this customer's row after a pause", gaps=_SLOW_DOWN),
    _rule("131057", Action.RETRY, "the number's throughput is being upgraded",
          "retry in about a minute", gaps=_SLOW_DOWN),
    _rule("4", Action.RETRY, "too many API calls for the app", "retry after a pause",
          gaps=_SLOW_DOWN),
    _rule("80007", Action.RETRY, "the account's rate limit was reached", "retry after a pause",
          gaps=_SLOW_DOWN),
    _rule("131000", Action.RETRY, "something went wrong at WhatsApp",
          "retry after a pause; if it persists, ask Kaleyra", gaps=(5 * _M, 15 * _M, _H)),
    _rule("131016", Action.RETRY, "WhatsApp's service is unavailable for a moment",
          "retry after a pause", gaps=(5 * _M, 15 * _M, _H)),
    _rule("131048", Action.STOP, "spam rate limit: the number is being restricted",
          "check the number's quality rating in WhatsApp Manager and the messages "
          "customers block or report, before anything more is sent", scope=Scope.NUMBER),
    _rule("368", Action.STOP, "the account is blocked for a policy violation",
          "read the violation in WhatsApp Manager and appeal or fix it first",
          scope=Scope.NUMBER),
    _rule("131031", Action.STOP, "the business account is locked",
          "the account is restricted or disabled; check WhatsApp Manager",
          scope=Scope.NUMBER),
    _rule("133010", Action.STOP, "the business number is not registered on WhatsApp",
          "register the number (Kaleyra's console) before sending", scope=Scope.NUMBER),
    _rule("131064", Action.STOP, "the messaging limit of the portfolio (unique customers "
          "in 24 h) is reached", "wait for the 24-hour window or a higher tier; raise "
          "the daily limit only with the tier", scope=Scope.NUMBER),
    _rule("131042", Action.STOP, "a payment problem on the business account",
          "fix the payment method in WhatsApp Manager", scope=Scope.NUMBER),
    _rule("131005", Action.STOP, "access denied to the number or the account",
          "check the permissions of the number with Kaleyra", scope=Scope.NUMBER),
    _rule("132015", Action.RETRY, "the template is paused for low quality (3 h, then 6 h)",
          "its rows wait; they may go when the pause ends (code recalled, not confirmed: "
          "the template's status decides too)", scope=Scope.TEMPLATE, gaps=(3 * _H, 6 * _H)),
    _rule("132016", Action.STOP, "the template is disabled for low quality",
          "its rows wait for a person: use another approved template (code recalled, not "
          "confirmed: the template's status decides too)", scope=Scope.TEMPLATE),
    _rule("131009", Action.FIX, "a parameter value is not valid",
          "correct the row's parameters; the pre-flight check should refuse it"),
    _rule("131008", Action.FIX, "a required parameter is missing", "fill the parameter"),
    _rule("131051", Action.FIX, "the message type is not supported", "use a supported type"),
    _rule("131053", Action.FIX, "the media could not be uploaded (type or size)",
          "check the media link: type and size within WhatsApp's limits"),
    _rule("132000", Action.FIX, "the template's parameter count does not match",
          "give as many params as the template has placeholders"),
    _rule("132001", Action.FIX, "the template does not exist in this language, or is not "
          "approved", "check template_name and lang_code against the catalogue"),
    _rule("132005", Action.FIX, "the translated text is too long", "shorten the parameters"),
    _rule("132012", Action.FIX, "a parameter's format does not match the template (e.g. a "
          "media header without media)", "give the parameters the template expects"),
    _rule("132018", Action.FIX, "a parameter is not valid (line breaks, tabs, > 4 spaces)",
          "remove line breaks, tabs and runs of spaces from the parameters"),
    # -- Kaleyra v2 answers ----------------------------------------------------------
    _rule("WA202", Action.WAIT, "accepted by Kaleyra (v2)", "wait for the receipt", _V2),
    _rule("WA400", Action.FIX, "the payload was refused", "correct the row's fields", _V2),
    _rule("WA500", Action.RETRY, "Kaleyra's server failed", "retry after 5, 10 and 15 minutes",
          _V2, gaps=(5 * _M, 10 * _M, 15 * _M)),
    _rule("E110", Action.STOP, "the account's balance is too low",
          "top up the Kaleyra account before sending", _V2, scope=Scope.NUMBER),
    _rule("RBC001", Action.STOP, "wrong SID or API key",
          "check KALEYRA_SID and KALEYRA_API_KEY", _V2, scope=Scope.NUMBER),
    _rule("WA401", Action.STOP, "the sending number is not in the account",
          "use a number of this Kaleyra account", _V2, scope=Scope.NUMBER),
    _rule("WA-401", Action.STOP, "the number is on the other API version, or the account "
          "type does not allow it", "send with the API version the number belongs to "
          "(--api-version, KALEYRA_API_VERSION, api_version=)", _V2, scope=Scope.NUMBER),
    _rule("WAV2101", Action.STOP, "the account's daily limit is reached",
          "no retry today; wait for the next day or ask Kaleyra for a higher limit",
          _V2, scope=Scope.NUMBER),
)  # fmt: skip

#: What each of kwa_batch's own policies (and Kaleyra's v1 codes, in the same table) means
#: as an action. A held row (quiet hours, not yet, the daily limit) or one never sent is
#: retried at once: the campaign's holds decide again when it leaves.
_BY_POLICY = {
    Policy.FIX: Action.FIX,
    Policy.WAIT: Action.RETRY,
    Policy.RESEND: Action.RETRY,
    Policy.NEVER: Action.FINAL,
    Policy.CHECK: Action.WAIT,
}
# Own codes whose action is not their policy's.
_OWN_EXCEPTIONS = {
    Code.HTTP401: (Action.STOP, Scope.NUMBER, "check KALEYRA_SID and KALEYRA_API_KEY"),
    # Held by a stop code or a template's pause seen while the run sent: sent again only
    # once a person has acted (the row's message says on what), never by a follow-up alone.
    Code.STOPPED: (
        Action.STOP,
        Scope.NUMBER,
        "act on the code in the row's message first, then send again",
    ),
    Code.TEMPLATE_HELD: (
        Action.STOP,
        Scope.ROW,
        "check the template's status in WhatsApp Manager first (paused: 3 or 6 h; "
        "disabled: use another template), then send again",
    ),
}
_OWN_WHAT = {
    Action.FIX: "correct the row, then send it again",
    Action.RETRY: "due now: the campaign's rules decide again when it leaves",
    Action.FINAL: "never sent by this campaign",
    Action.WAIT: "it may have gone out: wait for its receipt; never resent blindly",
}


def _own(code: Code) -> Rule:
    source = _V1 if code.source == "kaleyra" else "kwa_batch"
    if code in _OWN_EXCEPTIONS:
        action, scope, what = _OWN_EXCEPTIONS[code]
        return Rule(code.value, action, scope, code.meaning, what, source)
    action = _BY_POLICY[code.policy]
    gaps = (timedelta(0),) * 3 if action is Action.RETRY else ()
    return Rule(code.value, action, Scope.ROW, code.meaning, _OWN_WHAT[action], source, gaps)


#: Every known code → its :class:`Rule` (read-only): the one table of the outcome policy.
RULES: Mapping[str, Rule] = MappingProxyType(
    {rule.code: rule for rule in (*(_own(code) for code in Code), *_EXTERNAL)}
)
#: Codes after which nothing more should leave the sending number until a person acts.
STOP_CODES = frozenset(
    code
    for code, rule in RULES.items()
    if rule.action is Action.STOP and rule.scope is Scope.NUMBER
)
#: Codes that hold the rest of a template's rows (paused, disabled).
TEMPLATE_CODES = frozenset(code for code, rule in RULES.items() if rule.scope is Scope.TEMPLATE)


def normal_code(code: object) -> str | None:
    """A code as the table spells it: trimmed, ``131049.0`` (a spreadsheet's, or a JSON
    number) as ``131049``, a known code in its own case (``wav2101`` is ``WAV2101``); None
    for no code. The receiver stores codes this way, so that every reader (a running
    campaign's watch included) sees one spelling.

    >>> normal_code(" 131048.0 "), normal_code("wav2101"), normal_code("x9")
    ('131048', 'WAV2101', 'x9')
    """
    if code is None:
        return None
    text = str(code).strip()
    if not text or text.lower() in ("nan", "<na>", "none"):
        return None
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    upper = text.upper()
    return upper if upper in RULES and text not in RULES else text


def rule_for(code: object) -> Rule:
    """The rule for ``code`` (text or a number: ``131049`` and ``"131049"`` alike).

    A code no rule knows is ``final``, kept as given, so that nothing is retried on a
    guess; an empty code is ``final`` too ("failed without a code").

    >>> rule_for(131026).what_to_do
    'no retry: reach the customer another way'
    """
    text = normal_code(code) or ""
    found = RULES.get(text)
    if found is not None:
        return found
    if not text:
        return Rule("", Action.FINAL, Scope.ROW, "failed without a code",
                    "no retry: ask Kaleyra what happened", "unknown")  # fmt: skip
    return Rule(
        text,
        Action.FINAL,
        Scope.ROW,
        f"a code kwa_batch does not know ({text})",
        "no retry: look the code up in WhatsApp's or Kaleyra's docs",
        "unknown",
    )


def describe(code: str | None) -> str:
    """A code's meaning and fix in one line, for a results file's fix column and the
    command line: :func:`kwa_batch.errors.describe_code` for kwa_batch's and Kaleyra v1's
    codes, else the rule of :data:`RULES` for the codes only the outcome policy knows
    (Kaleyra v2's ``WA400``, ``WA-401``..., WhatsApp's); ``""`` for a code nobody knows.

    >>> describe("WA400")
    "the payload was refused. correct the row's fields"
    """
    said = describe_code(code)
    if said or not code:
        return said
    rule = RULES.get(normal_code(code) or "")
    return f"{rule.meaning}. {rule.what_to_do}" if rule is not None else ""


def meaning_of(code: str | None) -> str:
    """A code's meaning alone (see :func:`describe`); ``""`` for a code nobody knows.

    >>> meaning_of("WA-401")
    'the number is on the other API version, or the account type does not allow it'
    """
    entry = lookup_code(code)
    if entry is not None:
        return entry.meaning
    rule = RULES.get(normal_code(code) or "")
    return rule.meaning if rule is not None else ""


def rules_table(*, own: bool = True) -> list[tuple[str, str, str, str, str, str]]:
    """The table as rows of ``(code, source, action, scope, meaning, what to do)``: WhatsApp's
    codes, then Kaleyra's, then (with ``own``) kwa_batch's, each sorted by code; for the
    README and for people.

    >>> rules_table()[0][:3]
    ('4', 'whatsapp', 'retry')
    """
    order = {_WA: 0, _V1: 1, _V2: 2}
    rows = [r for r in RULES.values() if own or r.source in order]
    rows.sort(key=lambda r: (order.get(r.source, 3), len(r.code), r.code))
    return [
        (r.code, r.source, r.action.value, r.scope.value, r.meaning, r.what_to_do) for r in rows
    ]


def markdown_table(*, own: bool = False) -> str:
    """:func:`rules_table` as a Markdown table (the README's)."""
    lines = [
        "| code | source | action | scope | meaning | what to do |",
        "|---|---|---|---|---|---|",
    ]
    for row in rules_table(own=own):
        cells = (f"`{row[0]}`", *row[1:])
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)
