"""`fswl serve smtp`: the zone's small mail server that takes confirmations by reply."""
