"""The TUI's screens: each posts messages to the app (never imports it) and gets what it shows through its constructor."""
