"""What becomes of each message the emulator accepted, once the API has said ``sent``.

A campaign's results are decided after the answer: WhatsApp delivers a message and bills
it, or fails it with a code, and a customer may answer. :class:`Fates` plays that for
every accepted message that has a ``callback_url`` on this machine (a message without one
is not followed: it leaves no trace below), from
:class:`~kwa_batch.emulator.behaviour.CallbackSettings`, with a generator seeded with the
emulator's ``seed``, in the order messages arrive.

Each message's **category** is its template's in the catalogue played
(:mod:`kwa_batch.emulator.template_catalogue`), ``authentication`` for an authentication
template, ``template_category`` (``utility``) for a template of unknown category, and
``service`` for a message that is not a template. The first rule that applies decides:

1. a WhatsApp limit of the sender number (130429, 131056; :mod:`.limits`): ``failed``;
2. the sender is restricted (131048, spam rate limit): ``failed``. A sender is
   restricted once, among its last ``spam_window`` followed messages (at least
   ``spam_min_count`` of them), the share that failed reaches ``spam_threshold``; it
   stays restricted until ``emu.reset()``. Off by default;
3. a template the catalogue refuses (132xxx): ``sent``, then ``failed``;
4. a number not on WhatsApp (131026, *Message undeliverable*): one of
   ``not_on_whatsapp_numbers``, or drawn with the share ``not_on_whatsapp`` once per
   number (a number stays on or off WhatsApp): ``sent``, then ``failed``;
5. a **marketing** template to a number that stopped marketing messages (131050): one of
   ``opted_out``, or one that replied STOP (or tapped a button whose payload or text
   begins with STOP) to the emulator: ``sent``, then ``failed``;
6. a marketing template to a US number (``+1`` with a US area code, by libphonenumber's
   region; WhatsApp has paused marketing templates to US numbers since April 2025), or to
   a number that received a marketing template from this emulator less than
   ``marketing_window`` seconds ago (24 h by default, counted on the emulator's monotonic
   clock): 131049, WhatsApp's per-user marketing limit: ``sent``, then ``failed``;
7. otherwise drawn: ``delivered`` (then ``read`` with its share), or ``failed`` with
   ``failed_code``.

A **delivered** message's ``delivered`` callback carries its ``price`` (``prices`` by
category; made-up defaults, :data:`~kwa_batch.emulator.behaviour.DEFAULT_PRICES`),
``billable`` (``true`` when the price is above 0) and ``pricing_category``; no other
callback carries a price. A **read** message may be answered, the shares ``reply``,
``stop`` and ``button`` drawn in one go: ``reply_body``, ``STOP``, or the tap of one of
``buttons`` (``type=button``, ``body`` the button's text, ``payload`` its payload; a
message that is not a template has no buttons, and gets ``reply_body``). A v2 message
names its own buttons (an interactive message's reply buttons, a template's quick-reply
payloads): a tap is one of those (``type=interactive`` for a reply button). A reply
carries ``reply_to``, the ``message_id`` it answers. A STOP counts when its callback is
posted.
"""

from __future__ import annotations

import random
import secrets
from collections import deque
from dataclasses import dataclass

import phonenumbers

from .behaviour import CallbackSettings
from .template_catalogue import TEMPLATE_KINDS

__all__ = ["REASONS", "Fate", "Fates", "Reply", "says_stop"]

#: WhatsApp's codes the emulator plays after ``sent``, with their text.
REASONS = {
    "131026": "Message undeliverable",
    "131048": "Spam rate limit hit: there are restrictions on how many messages can be "
    "sent from this phone number",
    "131049": "This message was not delivered to maintain healthy ecosystem engagement",
    "131050": "Unable to deliver the message: this recipient has chosen to stop receiving "
    "marketing messages on WhatsApp from your business",
}


@dataclass(frozen=True)
class Reply:
    """A customer's answer: ``type`` ``text``, ``button`` (a template's quick reply) or
    ``interactive`` (a reply button), its ``body`` and ``payload`` (the button's id)."""

    type: str
    body: str
    payload: str | None = None


@dataclass(frozen=True)
class Fate:
    """What one message goes through: the statuses posted in order (``failed`` last when
    it fails, with ``error`` as ``(code, reason)``), its ``category``, the ``price`` of a
    delivered message, and the ``reply`` its recipient sends, if any."""

    statuses: tuple[str, ...]
    category: str
    error: tuple[str, str] | None = None
    price: float | None = None
    reply: Reply | None = None


def says_stop(body: str | None, payload: str | None = None) -> bool:
    """Whether a customer's message stops marketing: a text ``STOP`` (any case, a final
    ``.`` or ``!`` aside), or a button whose payload or text begins with ``STOP``."""
    if payload is not None:
        return any(v.strip().upper().startswith("STOP") for v in (payload, body or ""))
    return (body or "").strip().rstrip(".!").strip().upper() == "STOP"


def _is_us(digits: str) -> bool:
    if not digits.startswith("1"):
        return False
    try:
        number = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.region_code_for_number(number) == "US"


class Fates:
    """Decides each followed message's :class:`Fate`, and remembers what later ones depend
    on: marketing templates received, opt-outs, each sender's recent failures.

    Not thread-safe: :class:`~kwa_batch.emulator.callbacks.CallbackPoster` calls it with
    its lock held.

    Args:
        settings: what to play.
        rng: the seeded generator of the draws, shared with the poster.
        seed: seeds the draw of which numbers are on WhatsApp (None: a fresh one).
    """

    def __init__(self, settings: CallbackSettings, rng: random.Random, seed: int | None) -> None:
        self.settings = settings
        self._rng = rng
        self._salt = secrets.token_hex(8) if seed is None else str(seed)
        self._marketing: dict[str, float] = {}  # number -> when a marketing template reached it
        self._stopped: set[str] = set()  # numbers that replied STOP
        self._recent: dict[str, deque[bool]] = {}  # sender -> its last outcomes (True: failed)
        self._failed: dict[str, int] = {}  # sender -> how many of those failed
        self._restricted: set[str] = set()

    def category(self, kind: str, category: str | None) -> str:
        """The category a message is billed as (see the module docstring)."""
        if kind not in TEMPLATE_KINDS:
            return "service"
        if kind == "authenticationtemplate":
            return "authentication"
        return category or self.settings.template_category

    def decide(
        self,
        sender: str,
        recipient: str,
        kind: str,
        category: str | None,
        at: float,
        *,
        limited: tuple[str, str] | None = None,
        failure: tuple[str, str] | None = None,
        buttons: tuple[tuple[str, str], ...] = (),
    ) -> Fate:
        """The fate of one message from ``sender`` to ``recipient`` (digits), accepted at
        ``at`` (``time.monotonic()``): ``limited`` is a WhatsApp limit's ``(code,
        reason)``, ``failure`` the catalogue's refusal of its template, ``buttons`` the
        message's own ``(title, payload)`` buttons (v2)."""
        settings = self.settings
        billed = self.category(kind, category)
        if sender in self._restricted:
            return Fate(("failed",), billed, ("131048", REASONS["131048"]))
        error = limited or failure or self._refusal(recipient, billed, at)
        delivered = self._rng.random() < settings.delivered and error is None
        read = delivered and self._rng.random() < settings.read
        reply = self._reply(kind, buttons) if read else None
        if error is None and not delivered:
            error = (settings.failed_code, settings.failed_reason)
        self._count(sender, failed=error is not None)
        if error is not None:
            before_sent = limited is not None
            return Fate(("failed",) if before_sent else ("sent", "failed"), billed, error)
        if billed == "marketing":
            self._marketing[recipient] = at
        statuses = ("sent", "delivered", "read") if read else ("sent", "delivered")
        return Fate(statuses, billed, price=settings.prices[billed], reply=reply)

    def heard(self, customer: str, body: str | None, payload: str | None = None) -> None:
        """Note what a customer (digits) wrote: a STOP opts them out of marketing."""
        if says_stop(body, payload):
            self._stopped.add(customer)

    def opted_out(self, number: str) -> bool:
        """Whether marketing templates to ``number`` (digits) fail with 131050."""
        return number in self._stopped or number in self.settings.opted_out

    def restricted(self, sender: str) -> bool:
        """Whether every message from ``sender`` (digits) fails with 131048."""
        return sender in self._restricted

    def clear(self) -> None:
        """Forget what was received, said and counted (the settings stay)."""
        self._marketing.clear()
        self._stopped.clear()
        self._recent.clear()
        self._failed.clear()
        self._restricted.clear()

    def _refusal(self, recipient: str, category: str, at: float) -> tuple[str, str] | None:
        settings = self.settings
        if recipient in settings.not_on_whatsapp_numbers or (
            settings.not_on_whatsapp > 0
            and random.Random(f"{self._salt}/whatsapp/{recipient}").random()
            < settings.not_on_whatsapp
        ):
            return "131026", REASONS["131026"]
        if category != "marketing":
            return None
        if self.opted_out(recipient):
            return "131050", REASONS["131050"]
        last = self._marketing.get(recipient)
        window = settings.marketing_window
        if _is_us(recipient) or (last is not None and window > 0 and at - last < window):
            return "131049", REASONS["131049"]
        return None

    def _reply(self, kind: str, buttons: tuple[tuple[str, str], ...]) -> Reply | None:
        settings = self.settings
        drawn = self._rng.random()
        if drawn < settings.reply:
            return Reply("text", settings.reply_body)
        if drawn < settings.reply + settings.stop:
            return Reply("text", "STOP")
        if drawn < settings.reply + settings.stop + settings.button:
            if buttons:
                text, payload = self._rng.choice(buttons)
                return Reply("interactive" if kind == "interactive" else "button", text, payload)
            if kind not in TEMPLATE_KINDS:
                return Reply("text", settings.reply_body)
            text, payload = self._rng.choice(settings.buttons)
            return Reply("button", text, payload)
        return None

    def _count(self, sender: str, *, failed: bool) -> None:
        settings = self.settings
        threshold = settings.spam_threshold
        if threshold is None:
            return
        recent = self._recent.setdefault(sender, deque())
        count = self._failed.get(sender, 0) + failed
        recent.append(failed)
        if len(recent) > settings.spam_window:
            count -= recent.popleft()
        self._failed[sender] = count
        if len(recent) >= settings.spam_min_count and count >= threshold * len(recent):
            self._restricted.add(sender)
