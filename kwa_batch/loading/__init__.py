"""Loading: a user's files read safely and exactly as written.

:mod:`.files` opens only regular files, within a size cap; :mod:`.sheets` reads a
worksheet's cells in time and memory proportional to the cells present; :mod:`.headers`
maps a file's header onto the API's fields; :mod:`.recipients` loads a recipient file
(CSV or XLSX) into a frame of strings, every value as written.
"""
