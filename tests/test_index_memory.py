"""The in-memory index answers exactly what the tree on disk answers, for any sender the store accepts."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fswl.errors import BadSender
from fswl.index import MemoryIndex
from fswl.index.loader import load_all
from fswl.index.memory import pack_names, unpack_names
from fswl.names import parse_sender
from fswl.store import Whitelist

RELAYS = ["57.129.134.63", "57.129.134.0/24", "57.0.0.0/8", "2001:db8:1:2::/64"]
QUESTION_RELAYS = ["57.129.134.63", "57.129.134.64", "57.1.2.3", "58.1.2.3", "2001:db8:1:2::9", "2001:db8:1:3::9"]

# Local parts with what the file-name form must escape: newlines (the index's
# separator), %, /, spaces, a leading dot, control and non-ASCII characters.
local_parts = st.text(alphabet=st.sampled_from(list("ab.%/ \n\t\x00\x1b*é-_+") + ["ß", "Ω"]), min_size=1, max_size=8)
domains = st.sampled_from(["umkc.edu", "lists.umkc.edu", "example.net", "xn--bcher-kva.example"])


def canonical(local: str, domain: str) -> str | None:
    try:
        return parse_sender(f"{local}@{domain}")
    except BadSender:
        return None


@st.composite
def listings(draw) -> list[tuple[str, str]]:
    entries = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["exact", "domain", "any"]))
        domain = draw(domains)
        sender = {"exact": canonical(draw(local_parts), domain), "domain": f"*@{domain}", "any": "*"}[kind]
        if sender is not None:
            entries.append((sender, draw(st.sampled_from(RELAYS))))
    return entries


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=listings(), local=local_parts, domain=domains)
def test_index_lookup_is_the_store_lookup(tmp_path_factory, entries, local, domain) -> None:
    wl = Whitelist(tmp_path_factory.mktemp("home") / "db")
    for sender, relay in entries:
        wl.add(sender, relay)
    index = MemoryIndex(wl.tree)
    assert load_all(index) == len(set(entries))  # every relay here is one level: one file per pair
    questions = [sender for sender, _relay in entries] + [canonical(local, domain) or "nobody@else.org"]
    for question in questions:
        for relay in QUESTION_RELAYS:
            on_disk, in_memory = wl.lookup(question, relay), index.lookup(question, relay)
            assert (on_disk and (on_disk.sender, on_disk.network, on_disk.path)) == \
                   (in_memory and (in_memory.sender, in_memory.network, in_memory.path)), (question, relay)


def test_a_sender_with_a_newline_is_one_entry(wl: Whitelist) -> None:
    odd = parse_sender("a\nb@umkc.edu")
    wl.add(odd, "57.129.134.63")
    wl.add("b@umkc.edu", "57.129.134.63")
    index = MemoryIndex(wl.tree)
    assert load_all(index) == 2
    assert sorted(index.senders_in("ip4/57/129/134/63")) == sorted([odd, "b@umkc.edu"])
    assert index.lookup(odd, "57.129.134.63").sender == odd
    assert index.lookup("a@umkc.edu", "57.129.134.63") is None  # not half of the odd one


def test_entries_are_packed_file_names() -> None:
    names = ["b@x.org", "a@x.org", "a@x.org"]
    assert pack_names(names) == "\na@x.org\nb@x.org\n"
    assert unpack_names(pack_names(names)) == ["a@x.org", "b@x.org"]
    assert pack_names([]) == "" and unpack_names("") == []


def test_files_that_are_not_canonical_names_are_not_entries(wl: Whitelist) -> None:
    wl.add("dave@umkc.edu", "57.129.134.63")
    level = Path(wl.db, "ip4/57/129/134/63")
    for stray in ["Dave@umkc.edu", "bad%zz@umkc.edu", "no-at-sign", ".hidden@umkc.edu"]:
        (level / stray).touch()
    index = MemoryIndex(wl.tree)
    assert load_all(index) == 1
    assert index.lookup("Dave@umkc.edu", "57.129.134.63").sender == "dave@umkc.edu"
