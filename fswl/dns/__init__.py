"""The DNS side: names, index lookups, the responder."""
