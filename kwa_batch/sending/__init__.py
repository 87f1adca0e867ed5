"""Sending: the client, the planner (grouping), the journal, the stop button and the run.

:func:`kwa_batch.send` lives in :mod:`.run`; :class:`~.client.KaleyraClient` talks HTTP to
Kaleyra; :mod:`.planner` groups rows into requests; :mod:`.journal` records every row's
state in SQLite; :mod:`.stopping` turns Ctrl-C, SIGTERM and SIGHUP into one graceful stop.
"""
