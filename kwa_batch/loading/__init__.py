"""Loading: a user's files read safely and exactly as written.

:mod:`.files` opens only regular files, within a size cap; :mod:`.sheets` reads a
worksheet's cells in time and memory proportional to the cells present; :mod:`.reading` is
the one reader of a user's table (CSV or XLSX: recipients, catalogues, suppression lists,
rate cards); :mod:`.headers` maps a file's header onto the API's fields; :mod:`.recipients`
loads a recipient file into a frame of strings, every value as written.
"""
