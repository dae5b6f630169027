"""The Postfix policy service: 451 "not yet validated" at MAIL FROM/RCPT for unlisted senders."""
