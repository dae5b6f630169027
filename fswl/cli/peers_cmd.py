"""fswl peers add / ls / rm: the mirrors this node syncs with."""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    cli.add_command(peers)


@click.group()
def peers() -> None:
    """The mirrors this node syncs with (peers/NAME.toml)."""


@peers.command("add")
@click.argument("name")
@click.argument("url")
@click.option("--key", type=click.Path(dir_okay=False, exists=True), help="SSH private key (default: agent, ~/.ssh).")
@click.option("--known-hosts", type=click.Path(dir_okay=False), help="known_hosts file (default ~/.ssh/known_hosts).")
@click.option("--remote-command", default="fswl", show_default=True, help="The fswl command on the peer.")
@click.pass_obj
def add(obj, name: str, url: str, key: str | None, known_hosts: str | None, remote_command: str) -> None:
    """Add peer NAME (its [sync] node name) at ssh://user@host:port/path/to/its/home."""
    from fswl.sync.node import Node
    from fswl.sync.peers import Peer

    node = Node(obj.home)
    if name == node.name:
        raise click.BadParameter(f"{name} is this node's own name ([sync] node)")
    node.peers.add(Peer(name, url, key, known_hosts, remote_command))
    click.echo(f"added peer {name} {url}")


@peers.command("set")
@click.argument("name")
@click.option("--url", help="Its new ssh://user@host:port/path.")
@click.option("--key", type=click.Path(dir_okay=False, exists=True), help="SSH private key.")
@click.option("--known-hosts", type=click.Path(dir_okay=False), help="known_hosts file.")
@click.option("--remote-command", help="The fswl command on the peer.")
@click.pass_obj
def set_(obj, name: str, url: str | None, key: str | None, known_hosts: str | None,
         remote_command: str | None) -> None:
    """Change some settings of peer NAME, keeping the others (and what it is known to hold)."""
    from dataclasses import replace

    from fswl.sync.node import Node

    changes = {k: v for k, v in (("url", url), ("key", key), ("known_hosts", known_hosts),
                                 ("remote_command", remote_command)) if v is not None}
    if not changes:
        raise click.UsageError("say what to change: --url, --key, --known-hosts or --remote-command")
    node = Node(obj.home)
    peer = replace(node.peers.get(name), **changes)
    node.peers.add(peer)
    click.echo(f"peer {name}: " + ", ".join(f"{k.replace('_', '-')} {getattr(peer, k)}" for k in changes))


@peers.command("ls")
@click.pass_obj
def ls(obj) -> None:
    """List the peers, with the batches each is known to hold."""
    from fswl.sync.node import Node

    node = Node(obj.home)
    known = node.peers.known()
    for peer in node.peers.all():
        holds = ", ".join(f"{o}:{n}" for o, n in sorted(known.get(peer.name, {}).items())) or "nothing yet"
        click.echo(f"{peer.name}\t{peer.url}\tholds {holds}")


@peers.command("rm")
@click.argument("name")
@click.pass_obj
def rm(obj, name: str) -> None:
    """Remove peer NAME."""
    from fswl.sync.node import Node

    Node(obj.home).peers.remove(name)
    click.echo(f"removed peer {name}")
