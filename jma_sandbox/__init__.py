"""A local stand-in for JMA's Atom feeds (development tooling; the product never imports it).

It serves ``/developer/xml/feed/extra.xml``, ``eqvol.xml`` and their ``_l`` long variants and
the messages they list, built from JMA's samples and fixtures derived from them in
``messages/`` (source and terms in ``messages/README.md``), and a page on which a person
"publishes" a message: it then appears in the feed as JMA would list it."""
