"""HTTP plumbing, private to the toolkit: nothing here is public API.

Server side (the emulator and the callback receiver): :mod:`.serving` serves a WSGI
application from a background thread with real keep-alive; :mod:`.connections` keeps the
books of open connections (deadlines, the cap, whom to drop); :mod:`.chunked` reads a
chunked request body strictly. Client side: :mod:`.bounded` reads answers within a
deadline, a size cap and a JSON depth limit.
"""
