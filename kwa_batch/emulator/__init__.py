"""The emulator: a local Kaleyra for trying everything without an account.

:mod:`.server` plays the API as its document describes it (and misbehaves on purpose when
asked); :mod:`.callbacks` posts the delivery callbacks and customers' replies. It imports
nothing of the client's validation: it plays the remote side, so a bug on one side cannot
hide on the other.
"""
