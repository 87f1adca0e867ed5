"""Receipts: what happens after the API said ``sent``.

:mod:`.receiver` is the WSGI application (and server) that Kaleyra's callbacks reach;
:mod:`.store` keeps them in SQLite, once each; :mod:`.delivery` puts delivery statuses next
to the results; :mod:`.optouts` reads who opted out; :mod:`.conversations` lists the
open 24-hour conversation windows; :mod:`.replies` ties each reply to the row whose message
it answers.
"""
