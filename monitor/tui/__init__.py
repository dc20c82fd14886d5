"""Everything Textual: the app, its screens and widgets. Nothing outside ``tui`` and ``cli`` imports Textual."""
