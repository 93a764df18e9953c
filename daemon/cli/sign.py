"""``streamlearn sign``: vouch, once, for the unsigned checkpoints of a state dir."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["sign_command"]


@click.command("sign")
@click.argument("state_dir", type=click.Path(file_okay=False, exists=True))
def sign_command(state_dir: str) -> None:
    """Sign the checkpoints in STATE_DIR written before checkpoints were signed.

    streamlearn refuses to load a checkpoint that is not signed with the state
    dir's key: unpickling runs code, and an unsigned file may have been written by
    anyone who can write the directory. Run this once, as the user that owns
    STATE_DIR (the daemon's user), for checkpoints you know streamlearn wrote:
    each whose old checksum still holds is signed (nothing is unpickled). The
    daemon must be stopped (the state dir is locked meanwhile).
    """
    from streamlearn.state import (
        CheckpointError,
        CheckpointStore,
        StateLocked,
        check_owner,
        sign_unsigned,
    )

    try:
        check_owner(Path(state_dir), trust=False, hint="run sign as that user")
        store = CheckpointStore(state_dir)
    except (CheckpointError, StateLocked) as exc:
        raise click.ClickException(str(exc)) from None
    try:
        signed = sign_unsigned(store)
    except (CheckpointError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        store.close()
    click.echo(
        f"signed {len(signed)} checkpoint(s) in {state_dir}"
        + "".join(f"\n  {name}" for name in signed)
    )
