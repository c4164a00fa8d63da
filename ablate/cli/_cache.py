"""`ablate cache ls` and `ablate cache clear`: the decoded image caches of image folders."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from ablate.cli._app import app
from ablate.files import human_bytes

cache_app = typer.Typer(
    help="List or remove the decoded image caches (image folders decoded once, shared by every trial).",
    no_args_is_help=True,
)
app.add_typer(cache_app, name="cache")


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.0f} h ago"
    return f"{seconds / 86400:.0f} days ago"


@cache_app.command("ls")
def cache_ls() -> None:
    """List the caches: dataset folder, split, resolution, images, size on disk, last use."""
    from ablate.data import images_root, list_caches

    entries = list_caches()
    if not entries:
        typer.echo(f"no image caches in {images_root()}")
        return
    rows = [("dataset", "split", "resolution", "images", "size", "last used")]
    now = time.time()
    for e in entries:
        images = f"{e.images}" + (f" ({e.skipped} left out)" if e.skipped else "")
        resolution = f"{e.side} px {e.kind}" if e.side else "?"
        rows.append((e.dataset, e.split, resolution, images, human_bytes(e.bytes_on_disk), _ago(now - e.last_used)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) if i in (0, 1, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
    total = sum(e.bytes_on_disk for e in entries)
    typer.echo(f"{len(entries)} cache(s), {human_bytes(total)} in {images_root()}", err=True)


@cache_app.command("clear")
def cache_clear(
    dataset: Annotated[
        str | None,
        typer.Argument(help="A dataset folder (all its splits), one split folder, or imagefolder:<path>."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Remove every cache.")] = False,
) -> None:
    """Remove the caches of one dataset (or all with --all); they are rebuilt on next use."""
    from ablate.data import clear_caches, images_root, list_caches
    from ablate.errors import UserInputError

    if all_ == (dataset is not None):
        raise UserInputError("give a DATASET or --all (not both); `ablate cache ls` lists the caches")
    removed = clear_caches(None if all_ else dataset)
    if not removed and dataset is not None:
        known = sorted({e.dataset for e in list_caches()})
        raise UserInputError(
            f"no image cache of {dataset!r}; cached datasets: {', '.join(known) or 'none'} (`ablate cache ls`)"
        )
    freed = sum(e.bytes_on_disk for e in removed)
    typer.echo(f"removed {len(removed)} cache(s), {human_bytes(freed)} freed in {images_root()}")
