"""`fswl serve web`: confirmation and report pages, /why, and the IPv6 self-service form."""
