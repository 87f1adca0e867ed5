"""Exceptions and the table of error codes.

Every exception the toolkit raises on purpose derives from :class:`KwaBatchError`::

    KwaBatchError
    ├── ConfigurationError        credentials or settings missing or unusable
    │   ├── JournalError          the journal is damaged, foreign, newer, or unwritable
    │   │   └── JournalLockedError  another run holds the journal
    │   └── DatabaseError         a PostgreSQL URL that cannot be used (driver, server, schema)
    ├── JournalWriteError         the journal failed mid-run (disk full): stop the run, exit 3
    ├── InputError                a recipient file that cannot be read at all
    ├── ValidationError           ValidationReport.raise_for_errors(): some rows are invalid
    ├── TransportError            no usable HTTP answer came back
    │   ├── ConnectError          the connection was never established: safe to retry
    │   └── AmbiguousSendError    the request may have been processed: never resend blindly
    └── ApiError                  the API answered with an error (carries code, status, raw body)
        ├── AuthenticationError   401/403: the SID or the key is wrong; stop the run
        ├── ApiVersionError       WA-401: the sending number is on the other API version; stop
        ├── RateLimitError        429: too fast; safe to retry after ``retry_after`` seconds
        ├── ServerError           5xx: 503 is safe to retry, the others are ambiguous
        └── InvalidResponseError  a 2xx answer we cannot read: the message may have gone out

:data:`ERROR_CODES` maps each code the user can see in a results file to what it means
and what to do about it: Kaleyra's own codes (``E13008``, ``E13009``, ``E413``) and our
local rejection codes (``KWA…``), which are given to rows refused before sending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Any

__all__ = [
    "BAD_CREDENTIALS",
    "ERROR_CODES",
    "EXIT_INCOMPLETE",
    "EXIT_OK",
    "EXIT_ROWS",
    "EXIT_UNUSABLE",
    "NEVER_SENT_CODES",
    "OTHER_API_VERSION",
    "AmbiguousSendError",
    "ApiError",
    "ApiVersionError",
    "AuthenticationError",
    "Code",
    "ConfigurationError",
    "ConnectError",
    "DatabaseError",
    "ErrorCode",
    "InputError",
    "InvalidResponseError",
    "JournalError",
    "JournalLockedError",
    "JournalWriteError",
    "KwaBatchError",
    "Policy",
    "RateLimitError",
    "ServerError",
    "Source",
    "TransportError",
    "ValidationError",
    "describe_code",
    "lookup_code",
]


class Source(StrEnum):
    """Who gives a code: Kaleyra's API in its answer, or kwa_batch itself."""

    KALEYRA = "kaleyra"
    LOCAL = "local"


class Policy(StrEnum):
    """What becomes of a row with a code, and so what the user does about it."""

    FIX = "fix"
    """Refused as written: correct the row, then send it again."""
    WAIT = "wait"
    """Held back: the same command, run again later, sends it."""
    NEVER = "never"
    """Never sent by this campaign, even on resume: final, like ``failed``."""
    RESEND = "resend"
    """Nothing went out: running again sends it."""
    CHECK = "check"
    """It may have gone out: check its delivery before sending it again."""


@dataclass(frozen=True)
class ErrorCode:
    """One entry of the code table: what went wrong, how to fix it, and what becomes of
    the row (:class:`Policy`)."""

    code: str
    meaning: str
    fix: str
    source: str  # "kaleyra" (the API answers with it) or "local" (refused before sending)
    policy: str = Policy.FIX.value


@unique
class Code(StrEnum):
    """Every code a results file or a validation report may hold, each with its meaning,
    its fix, who gives it and its :class:`Policy`: the one place a code is defined.

    A member is a ``str`` and equals its code (``Code.OPTED_OUT == "KWA025"``); frames and
    files hold the plain string (``str(code)``, or ``code.value``).

    >>> Code.OPTED_OUT == "KWA025", Code("KWA025").policy
    (True, <Policy.NEVER: 'never'>)
    """

    meaning: str
    fix: str
    source: Source
    policy: Policy

    def __new__(cls, code: str, meaning: str, fix: str, source: Source, policy: Policy) -> Code:
        member = str.__new__(cls, code)
        member._value_ = code
        member.meaning = meaning
        member.fix = fix
        member.source = source
        member.policy = policy
        return member

    # Kaleyra's codes, from the API document.
    INVALID_FROM = (
        "E13008",
        "invalid 'from' number",
        "Use the WhatsApp business number registered with Kaleyra, in E.164 form "
        "(+ and country code, e.g. +911234567890).",
        Source.KALEYRA,
        Policy.FIX,
    )
    INVALID_TO = (
        "E13009",
        "invalid 'to' number",
        "Write the recipient's full number in E.164 form (+ and country code, e.g. "
        "+919876543210); each row's message says what is wrong with its value (a number "
        "written without its country code: pass default_region= / --region).",
        Source.KALEYRA,
        Policy.FIX,
    )
    HTML_IN_PARAMETER = (
        "E413",
        "HTML tags in a parameter other than body",
        "Remove the <...> tags from this field; only 'body' may contain them.",
        Source.KALEYRA,
        Policy.FIX,
    )
    # Local codes: rows refused before anything is sent.
    TOO_LONG = (
        "KWA001",
        "text longer than the API allows",
        "Shorten the value: ref, ref1 and ref2 hold at most 255 characters, a body at most 4,096.",
        Source.LOCAL,
        Policy.FIX,
    )
    REQUIRED_EMPTY = (
        "KWA002",
        "a required field is empty",
        "Fill the field: a text message needs 'body', a template message 'template_name', a "
        "media message 'media_url', an authentication template 'verification_code'.",
        Source.LOCAL,
        Policy.FIX,
    )
    UNKNOWN_TYPE = (
        "KWA003",
        "unknown message type or channel",
        "Use type 'text', 'template', 'media', 'mediatemplate' or 'authenticationtemplate' "
        "and channel 'whatsapp' (or leave them empty).",
        Source.LOCAL,
        Policy.FIX,
    )
    MANGLED_NUMBER = (
        "KWA004",
        "number mangled by a spreadsheet",
        "Re-export the column as text (in Excel: format the column as Text before pasting); "
        "the value as saved is not the real number and will not be guessed.",
        Source.LOCAL,
        Policy.FIX,
    )
    BAD_CALLBACK_URL = (
        "KWA005",
        "callback_url is not an http(s) URL",
        "Give a full URL such as https://example.com/kaleyra/callback, or leave it empty.",
        Source.LOCAL,
        Policy.FIX,
    )
    CONTROL_CHARACTERS = (
        "KWA006",
        "control characters in a field",
        "Remove tabs, line breaks and other control characters (allowed only in 'body').",
        Source.LOCAL,
        Policy.FIX,
    )
    DUPLICATE_ROW = (
        "KWA007",
        "duplicate row: same recipient, same message",
        "Remove the repeated row; the first one is sent (WhatsApp throttles repeats anyway).",
        Source.LOCAL,
        Policy.FIX,
    )
    MALFORMED_ROW = (
        "KWA008",
        "malformed row in the file",
        "The line has too many or too few fields: check its quotes and delimiters.",
        Source.LOCAL,
        Policy.FIX,
    )
    EMPTY_SOURCE_VALUE = (
        "KWA009",
        "a value the message is built from is empty",
        "Fill the cell named in the report (a column used by params_from / --params-from or a "
        "{placeholder} of body_template / --body-template), or remove the row; WhatsApp "
        "refuses empty template parameters.",
        Source.LOCAL,
        Policy.FIX,
    )
    BAD_PARAMS = (
        "KWA010",
        "params is not a well-formed list of template parameters",
        "Write the parameters comma-separated, none empty; put a value that holds a comma or "
        'a quote in double quotes, with "" for a quote inside: "Tan, Wei Ling",A1008.',
        Source.LOCAL,
        Policy.FIX,
    )
    BAD_LANG_CODE = (
        "KWA011",
        "lang_code is not a language code",
        "Use the template's language code as approved: 'en', 'pt_BR', 'es_MX' (language in lower "
        "case, then _ and the country in capitals), or leave it empty.",
        Source.LOCAL,
        Policy.FIX,
    )
    WINDOW_CLOSED = (
        "KWA012",
        "no open 24-hour conversation window: free text would be refused",
        "Send an approved template to this recipient instead (type 'template' with a "
        "template_name); free text is allowed only within 24 hours of their last message.",
        Source.LOCAL,
        Policy.FIX,
    )
    # Template and opt-out checks against the catalogue (issue #12); WhatsApp's code for
    # the same failure, when sent anyway, in brackets.
    TEMPLATE_UNKNOWN = (
        "KWA013",
        "the template is not in the catalogue",
        "Use the name of a template of your WhatsApp account as approved (names are lower "
        "case with underscores), or update the catalogue (kwa-batch templates) [132001].",
        Source.LOCAL,
        Policy.FIX,
    )
    LANGUAGE_AMBIGUOUS = (
        "KWA014",
        "lang_code is empty and the template exists in several languages",
        "Fill lang_code with one of the languages the report names.",
        Source.LOCAL,
        Policy.FIX,
    )
    LANGUAGE_UNKNOWN = (
        "KWA015",
        "the template does not exist in this language",
        "Use one of the template's languages that the report names, or have the template "
        "translated and approved in this one [132001].",
        Source.LOCAL,
        Policy.FIX,
    )
    TEMPLATE_NOT_APPROVED = (
        "KWA016",
        "the template is not approved (pending, rejected…)",
        "Wait for WhatsApp to approve it, or use an approved template [132001].",
        Source.LOCAL,
        Policy.FIX,
    )
    TEMPLATE_PAUSED = (
        "KWA017",
        "the template is paused for low quality",
        "WhatsApp paused it after negative feedback (3 hours, then 6): wait, or use another "
        "approved template [132015].",
        Source.LOCAL,
        Policy.FIX,
    )
    TEMPLATE_DISABLED = (
        "KWA018",
        "the template is disabled",
        "WhatsApp disabled it for repeated low quality: use another approved template [132016].",
        Source.LOCAL,
        Policy.FIX,
    )
    PARAMS_COUNT = (
        "KWA019",
        "params does not have as many values as the template's body has placeholders",
        "Give exactly one value per {{n}} placeholder of the template's body, "
        "comma-separated [132000].",
        Source.LOCAL,
        Policy.FIX,
    )
    MEDIA_MISSING = (
        "KWA020",
        "the template has a media header but the row has no media_url",
        "Fill media_url with a public https link to the image, video or document the "
        "header shows [132012].",
        Source.LOCAL,
        Policy.FIX,
    )
    MEDIA_KIND = (
        "KWA021",
        "media_url is not the kind of media the template's header takes",
        "Link a file of the header's kind (IMAGE: .jpg/.png, VIDEO: .mp4/.3gp, DOCUMENT: "
        ".pdf…) [132012].",
        Source.LOCAL,
        Policy.FIX,
    )
    HEADER_PARAM_MISSING = (
        "KWA022",
        "the template's text header has a placeholder but the row has no param_header",
        "Fill param_header with the header's value [132000].",
        Source.LOCAL,
        Policy.FIX,
    )
    URL_PARAM_MISSING = (
        "KWA023",
        "the template has a dynamic URL button but the row has no param_url",
        "Fill param_url with the end of the button's link (what replaces {{1}}) [132000].",
        Source.LOCAL,
        Policy.FIX,
    )
    PARAM_SPACING = (
        "KWA024",
        "a template parameter is empty or holds a line break, a tab or more than four "
        "spaces in a row",
        "Write each parameter on one line, without tabs, with at most four spaces in a row "
        "(WhatsApp refuses such parameters) [132018].",
        Source.LOCAL,
        Policy.FIX,
    )
    OPTED_OUT = (
        "KWA025",
        "the recipient opted out (on the suppression list)",
        "Do not send to this number: remove the row. If they opted in again (replied START), "
        "take them off the suppression list [131050].",
        Source.LOCAL,
        Policy.NEVER,
    )
    BAD_MEDIA_URL = (
        "KWA026",
        "media_url is not an http(s) link",
        "Give a full public link such as https://cdn.example.com/invoice.pdf.",
        Source.LOCAL,
        Policy.FIX,
    )
    # Pacing (issue #13): rows held back by quiet hours, the schedule or the daily limit.
    QUIET_HOURS = (
        "KWA027",
        "held back: quiet hours in the recipient's time zone",
        "Nothing to fix: run the same command again after the time in the message (e.g. from "
        "cron every 15 minutes); the journal sends only what is left.",
        Source.LOCAL,
        Policy.WAIT,
    )
    NOT_YET = (
        "KWA028",
        "held back: the campaign does not start yet (not_before / --not-before)",
        "Run the same command again after the start time given in the message.",
        Source.LOCAL,
        Policy.WAIT,
    )
    EXPIRED = (
        "KWA029",
        "expired: not sent by the campaign's expiry (expires / --expire-after)",
        "This row is never sent by this campaign, even on resume: if it is still worth "
        "sending, start a new campaign (another journal) for it.",
        Source.LOCAL,
        Policy.NEVER,
    )
    DAILY_LIMIT = (
        "KWA030",
        "held back: the daily messaging limit (unique recipients in 24 h) is reached",
        "Run the same command again after the time in the message, when room comes back; "
        "or ask for a higher messaging tier [131064].",
        Source.LOCAL,
        Policy.WAIT,
    )
    NO_ZONE = (
        "KWA031",
        "held back: the recipient's time zone is unknown or has no time outside the quiet hours",
        "Quiet hours cannot be kept for this number: send it in a run without quiet hours if "
        "that is acceptable, or remove the row.",
        Source.LOCAL,
        Policy.WAIT,
    )
    SEVERAL_NUMBERS = (
        "KWA032",
        "the recipient cell holds several numbers",
        "Put one number per row (a row for each recipient), or pick the column that holds one "
        "number with --column to=NAME / columns={'to': NAME}; a cell is never split into "
        "several recipients.",
        Source.LOCAL,
        Policy.FIX,
    )
    # Issue #19: the receipts store watched while the run sends.
    STOPPED = (
        "KWA033",
        "not sent: a callback said to stop sending from this number (spam rate limit, "
        "policy block, account locked, no balance, the daily limit...)",
        "A person must act first: the row's message names the code and what to check (e.g. "
        "131048: the number's quality rating in WhatsApp Manager). Then run the same command "
        "again (with the same journal): these rows are sent; the stop code seen before the "
        "new run starts does not stop it again.",
        Source.LOCAL,
        Policy.RESEND,
    )
    TEMPLATE_HELD = (
        "KWA034",
        "held back: WhatsApp paused or disabled the row's template while the run was sending",
        "Check the template's status in WhatsApp Manager: a paused template (132015) comes "
        "back after 3 or 6 hours, then run the same command again; a disabled one (132016) "
        "does not: send these rows with another approved template [132015, 132016].",
        Source.LOCAL,
        Policy.WAIT,
    )
    # Issue #20: the rich kinds (buttons, lists, carousels, replies, message_json).
    V2_ONLY = (
        "KWA035",
        "v2 only: Kaleyra's v1 API cannot send this row (interactive buttons or a list, a "
        "carousel, template buttons with payloads, a flow token or a coupon code, a reply in "
        "context, message_json)",
        "Send with api_version='v2' (--api-version v2, KALEYRA_API_VERSION=v2) from a number "
        "onboarded on v2; or, on v1, empty the row's v2 columns (buttons, list, list_button, "
        "reply_to, message_json, card_N_...).",
        Source.LOCAL,
        Policy.FIX,
    )
    RICH_COUNT = (
        "KWA036",
        "more buttons, list sections or rows, or carousel cards than WhatsApp allows",
        "Keep to WhatsApp's limits: 1 to 3 reply buttons, at most 10 list sections and 10 "
        "rows in all, at most 10 cards [131009].",
        Source.LOCAL,
        Policy.FIX,
    )
    RICH_LENGTH = (
        "KWA037",
        "a button title, id, list text, header, body or footer is longer than WhatsApp allows",
        "Shorten it: reply button titles 20 characters, ids 256; list button 20, section "
        "and row titles 24, row ids 200; header 60, body 1,024, footer 60 [131009].",
        Source.LOCAL,
        Policy.FIX,
    )
    RICH_SHAPE = (
        "KWA038",
        "the rich message is malformed: message_json is not a message object, an interactive "
        "row lacks its body, buttons or list, or the card columns leave a gap",
        "Follow the row's message: message_json is one JSON object with 'type' and that "
        "type's object; an interactive row has a body and either buttons or a list (with "
        "list_button); cards are numbered 1, 2, 3... without a gap [131009].",
        Source.LOCAL,
        Policy.FIX,
    )
    BUTTONS_MISMATCH = (
        "KWA039",
        "the row's buttons do not fit the template's: more values than the template has "
        "quick-reply, flow and copy-code buttons, or a flow or copy-code button without its "
        "value",
        "Give, |-separated and in the template's order, one payload per quick-reply button "
        "(optional), then the flow button's token and the copy-code button's code (required) "
        "[131009, 132018].",
        Source.LOCAL,
        Policy.FIX,
    )
    CARDS_MISMATCH = (
        "KWA040",
        "the row's carousel cards do not match the approved template: their number, a card's "
        "parameters or its media",
        "Fill card_1_... to card_N_... for exactly the template's N cards, each card_N_params "
        "with one value per {{n}} of that card's body and card_N_media_url with its image or "
        "video [132012, 132000].",
        Source.LOCAL,
        Policy.FIX,
    )
    # Transport and server outcomes recorded in the results.
    HTTP401 = (
        "HTTP401",
        "the API refused the credentials",
        "Check KALEYRA_SID and KALEYRA_API_KEY (and the regional base URL); then resume.",
        Source.KALEYRA,
        Policy.RESEND,
    )
    HTTP429 = (
        "HTTP429",
        "rate limited by the API, retries ran out",
        "Lower --rate or --concurrency and run again; these rows were not sent.",
        Source.KALEYRA,
        Policy.RESEND,
    )
    HTTP5XX = (
        "HTTP5XX",
        "server error: the message may or may not have been sent",
        "Check the recipient's delivery status (or Kaleyra's logs) before sending again.",
        Source.KALEYRA,
        Policy.CHECK,
    )
    TIMEOUT = (
        "TIMEOUT",
        "no answer in time: the message may or may not have been sent",
        "Check the recipient's delivery status before sending again; raise --timeout if the "
        "network is slow.",
        Source.LOCAL,
        Policy.CHECK,
    )
    CONNECT = (
        "CONNECT",
        "could not connect to the API: nothing was sent",
        "Check the network and the base URL, then run again; these rows are safe to resend.",
        Source.LOCAL,
        Policy.RESEND,
    )
    BADRESPONSE = (
        "BADRESPONSE",
        "the API's answer could not be read: the message may or may not have been sent",
        "Check the recipient's delivery status before sending again; the raw answer is kept "
        "in error_message.",
        Source.LOCAL,
        Policy.CHECK,
    )
    HTTP4XX = (
        "HTTP4XX",
        "the API refused the request",
        "Read error_message for the API's reason, correct the row, and send it again (it was "
        "not processed).",
        Source.KALEYRA,
        Policy.FIX,
    )
    DROPPED = (
        "DROPPED",
        "the connection broke after the request was sent: the message may or may not have "
        "been sent",
        "Check the recipient's delivery status before sending again.",
        Source.LOCAL,
        Policy.CHECK,
    )
    NORECIPIENT = (
        "NORECIPIENT",
        "the API accepted the request but did not list this recipient in its answer",
        "Check the recipient's delivery status before sending again.",
        Source.LOCAL,
        Policy.CHECK,
    )
    INFLIGHT = (
        "INFLIGHT",
        "an earlier run stopped while this row's request was going out: it may or may not "
        "have been sent",
        "Check the recipient's delivery status; to send it again anyway, run with "
        "--resend-unknown (resend_unknown=True).",
        Source.LOCAL,
        Policy.CHECK,
    )
    ELSEWHERE = (
        "ELSEWHERE",
        "another process sending the same campaign (a journal on PostgreSQL) held this row in "
        "flight when this run finished: it may or may not have been sent, by that process",
        "See that process's results; or, once every process of the campaign has finished, run "
        "the same command again: it reports what the journal says of the row (sent, failed, "
        "or unknown if that process died while sending it).",
        Source.LOCAL,
        Policy.CHECK,
    )
    INTERRUPTED = (
        "INTERRUPTED",
        "the run was interrupted while this row's request was in flight: it may or may not "
        "have been sent",
        "Check the recipient's delivery status before sending again.",
        Source.LOCAL,
        Policy.CHECK,
    )
    NOTSENT = (
        "NOTSENT",
        "the run stopped before this row was sent",
        "Run the same command again to send it.",
        Source.LOCAL,
        Policy.RESEND,
    )


#: Each code's entry by its text, derived from :class:`Code`.
ERROR_CODES: dict[str, ErrorCode] = {
    code.value: ErrorCode(code.value, code.meaning, code.fix, code.source.value, code.policy.value)
    for code in Code
}
#: Codes of ``not_sent`` rows that no later run sends (:attr:`Policy.NEVER`).
NEVER_SENT_CODES = frozenset(code.value for code in Code if code.policy is Policy.NEVER)

#: The exit codes of the command line (and of a run's outcome, which it exits with): every
#: row sent; some rejected, failed or never to be sent; the input or the configuration
#: unusable; incomplete (a later run may still settle rows). A signal adds 128 to its number.
EXIT_OK, EXIT_ROWS, EXIT_UNUSABLE, EXIT_INCOMPLETE = 0, 1, 2, 3


def describe_code(code: str | None) -> str:
    """Return a one-line explanation with the fix for an error ``code`` (``""`` when unknown).

    >>> describe_code("E13009").startswith("invalid 'to' number")
    True
    """
    entry = lookup_code(code)
    return f"{entry.meaning}. {entry.fix}" if entry else ""


_STATUS_CODE = re.compile(r"(?:HTTP|E)([1-5]\d\d)")


def lookup_code(code: str | None) -> ErrorCode | None:
    """The table entry for ``code``; HTTP-status codes the API may send in its own spelling
    (``E401``, ``HTTP502``…) map to the entry of their family."""
    if not code:
        return None
    if code in ERROR_CODES:
        return ERROR_CODES[code]
    found = _STATUS_CODE.fullmatch(code)
    if found is None:
        return None
    status = int(found.group(1))
    if status in (401, 403):
        return ERROR_CODES[Code.HTTP401]
    if status == 429:
        return ERROR_CODES[Code.HTTP429]
    if status >= 500:
        return ERROR_CODES[Code.HTTP5XX]
    if status >= 400:
        return ERROR_CODES[Code.HTTP4XX]
    return None


class KwaBatchError(Exception):
    """Base class of every error kwa_batch raises on purpose."""


class ConfigurationError(KwaBatchError):
    """Credentials or settings are missing or unusable (CLI exit code 2)."""


class InputError(KwaBatchError):
    """A recipient file cannot be read at all (CLI exit code 2)."""


class ValidationError(KwaBatchError):
    """Some rows failed validation; raised by ``ValidationReport.raise_for_errors()``."""


class TransportError(KwaBatchError):
    """No usable HTTP answer came back from the API."""

    code = "TRANSPORT"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ConnectError(TransportError):
    """The connection was never established, so nothing was sent: safe to retry."""

    code = Code.CONNECT.value


class AmbiguousSendError(TransportError):
    """The request went out but no answer came back: it may have been processed."""

    code = Code.TIMEOUT.value


class ApiError(KwaBatchError):
    """The API answered with an error.

    Attributes:
        code: the API's error code (``E13009``…), or ``HTTP<status>`` when it gave none.
        message: every reason the API gave, joined.
        http_status: the HTTP status of the answer.
        raw: the raw text of the answer (truncated), for the results and for support.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        http_status: int,
        raw: str = "",
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code} (HTTP {http_status}): {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.raw = raw
        self.details = details or {}


class AuthenticationError(ApiError):
    """401/403: the SID or the API key was refused. Nothing more can be sent."""


#: Kaleyra v2's answer for a number on the other API version (v1 or v2): it stops a run.
OTHER_API_VERSION = "WA-401"
#: Kaleyra v2's answer for a wrong SID or key: a credential refusal, as v1's HTTP 401/403.
BAD_CREDENTIALS = "RBC001"


class ApiVersionError(ApiError):
    """``WA-401``: the sending number (or the account) is on the other of Kaleyra's API
    versions. Nothing more can be sent through this one: the run stops."""


class RateLimitError(ApiError):
    """429: the API asks us to slow down; safe to retry after :attr:`retry_after` seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: a 503 was refused before processing (safe to retry); others may have been sent."""

    @property
    def is_safe_to_retry(self) -> bool:
        """True for 503 Service Unavailable, which says the request was not processed."""
        return self.http_status == 503


class InvalidResponseError(ApiError):
    """A 2xx answer whose body cannot be read: the message may have been sent."""


class JournalError(ConfigurationError):
    """The journal cannot be used at all: damaged, not a journal, another program's database,
    a newer version's, or in a place that cannot be written (CLI exit code 2, before
    anything is sent)."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class DatabaseError(ConfigurationError):
    """A PostgreSQL database (``postgresql://…``) cannot be used: the driver is not
    installed, the server cannot be reached or refuses the login, or its kwa_batch tables
    are a newer version's. The message names the URL without its password."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class JournalLockedError(JournalError):
    """Another run holds the journal (under this name or another): running both could send
    the same rows twice."""


class JournalWriteError(KwaBatchError):
    """The journal could not record a run's progress mid-run (a full disk, an I/O error).

    What it recorded before is intact (the failed transaction is rolled back); the run must
    stop without sending more, since the outcomes of new requests could not be kept.
    """

    def __init__(self, message: str, *, path: str = "", reason: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
