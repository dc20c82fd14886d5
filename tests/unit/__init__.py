"""Unit tests of the core: pure functions and SQLite, no network."""
