"""The TUI's reusable widgets: the virtual event table, its column list, and the stats bar."""
