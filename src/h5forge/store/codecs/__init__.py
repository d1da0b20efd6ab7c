"""Built-in codecs, one module per family. Importing this package registers them.

Order matters: a codec registered later is asked first among predicate codecs, so the
scientific families come after numpy, and neo (whose signals are quantities) after units.
None of them imports its library here: each does so only when it meets one of its objects.
"""

# isort: off
from h5forge.store.codecs import builtins  # noqa: F401  (registration, in this order)
from h5forge.store.codecs import numpy  # noqa: F401
from h5forge.store.codecs import objects  # noqa: F401
from h5forge.store.codecs import stdlib  # noqa: F401
from h5forge.store.codecs import units  # noqa: F401
from h5forge.store.codecs import neo  # noqa: F401
from h5forge.store.codecs import pandas  # noqa: F401
from h5forge.store.codecs import astropy  # noqa: F401
from h5forge.store.codecs import xarray  # noqa: F401
from h5forge.store.codecs import scipy  # noqa: F401
# isort: on
