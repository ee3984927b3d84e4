"""Forms, one module per screen family, named like the views that use them
(``forms/compose.py`` for ``views/compose.py``); field types shared by every screen in
``forms/fields.py``. Interfaces only: no state changes here."""
