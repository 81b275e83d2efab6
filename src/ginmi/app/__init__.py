"""The application: the ``ginmi`` command line, the paper's studies (one module per command:
:mod:`~ginmi.app.synthetic`, :mod:`~ginmi.app.images`, :mod:`~ginmi.app.user`), run folders,
metrics logs, figures and the HTML report. It is built on the library (the rest of :mod:`ginmi`),
which never imports it."""
