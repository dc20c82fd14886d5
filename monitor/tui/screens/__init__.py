"""The TUI's screens: each posts messages to the app (never imports it); what it shows comes in."""
