"""Files as hostile input and files written to survive a crash.

`reading`: only regular files inside a root, opened without following links or blocking, checked
on the open descriptor, never read past a cap. `writing`: whole files, renamed into place.
"""

from pipeline.files.reading import FileRefused, open_inside, read_inside, read_regular, walk_files
from pipeline.files.writing import atomic_write

__all__ = ["FileRefused", "atomic_write", "open_inside", "read_inside", "read_regular", "walk_files"]
