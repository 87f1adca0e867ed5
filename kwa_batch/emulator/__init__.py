"""The emulator: a local Kaleyra for trying everything without an account.

It imports nothing of the client's validation: it plays the remote side, so a bug on one
side cannot hide on the other. Its rooms, one concept each:

- :mod:`.server`: :class:`~.server.Emulator`, its life cycle (start, stop, ``with``) and
  its public face (``emu.messages``, ``emu.inject``, ``emu.reply``...);
- :mod:`.behaviour`: its settings, as frozen types (``NetworkSettings``,
  ``FaultSettings``, ``LimitSettings``, ``CallbackSettings``, ``VersionSettings``);
- :mod:`.keywords`: ``Emulator``'s one-by-one keywords (``latency=``...), each onto a field
  of its settings;
- :mod:`.endpoint`: the v1 and v2 messages endpoints, a WSGI application taking each
  request through its stages to an answer, with the answer's delay;
- :mod:`.bodies`: reading a request's fields from its query and body, whatever the body;
- :mod:`.request_checks`: the document's checks of those fields (numbers, types, lengths,
  HTML);
- :mod:`.media`: the checks of media messages and media and authentication templates;
- :mod:`.v2_checks`: the checks of a v2 send (WhatsApp's message object, ``WA400``);
- :mod:`.answers`: the success body and the error bodies, with their codes;
- :mod:`.faults`: misbehaviour on purpose (faults drawn or injected) and the API's own
  rate limit;
- :mod:`.limits`: WhatsApp's limits per sender number (throughput, pair rate);
- :mod:`.ledger`: the messages it accepted (``emu.messages``) and the requests it saw;
- :mod:`.callbacks`: the delivery callbacks and customers' replies it posts (to loopback
  receivers only);
- :mod:`.fates`: what becomes of each message after ``sent``: its price, WhatsApp's
  marketing limit (131049), opt-outs (131050), numbers not on WhatsApp (131026), the spam
  limit (131048), and the replies it gets;
- :mod:`.template_catalogue`: a template catalogue played (the v2 list, and sends that do
  not match it failing).
"""
