"""The listener, forwarder, sender and command line: real HTTP on 127.0.0.1, real processes."""
