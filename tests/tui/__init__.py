"""The Textual screens: App.run_test with Pilot, snapshots, and the real program in tmux."""
