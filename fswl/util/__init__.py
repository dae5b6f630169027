"""Small helpers shared by every part of fswl (no fswl imports here)."""
