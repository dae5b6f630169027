"""The whitelist store: a tree of empty files under db/."""

from fswl.store.journal import Change
from fswl.store.tree import Tree
from fswl.store.walk import Listing, Problem
from fswl.store.whitelist import Match, Whitelist

__all__ = ["Change", "Listing", "Match", "Problem", "Tree", "Whitelist"]
