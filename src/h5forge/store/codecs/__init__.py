"""Built-in codecs, one module per family. Importing this package registers them."""

from h5forge.store.codecs import builtins, numpy, objects, stdlib  # noqa: F401  (registration)
