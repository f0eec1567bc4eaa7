"""What a full disk looks like at the command line: one sentence that names the folder, never a traceback.

A write of the project's own (ledger, metrics, heartbeat, checkpoint) raises common.atomic.DiskFull, which names
its folder. Others fail in their own words: git ("No space left on device") under the run repository, SQLite
("database or disk is full") under Prefect's home, or Prefect's temporary server answering 500 because its
database could not grow. For those the folder is the one of the places this project writes (runs, datasets,
Prefect's home, the temporary folder) with the least free space. Every record is written atomically, so a run
stopped this way has lost nothing, and the same command resumes it once there is room.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from common.atomic import DiskFull, disk_full_folder, is_disk_full

# Below this many free bytes a folder is taken as full even when the error did not say so (a 500 from Prefect's
# server whose database could not grow): no training or record of this project fits in it.
NEARLY_FULL_BYTES = 1 * 2**20


def written_folders(overrides: list[str] | None = None) -> list[Path]:
    """Where a run writes: paths.runs_dir, paths.data_dir, Prefect's home and the temporary folder."""
    folders: list[Path] = []
    try:
        from flows.compose import compose, resolve_path

        cfg = compose(list(overrides or []), auto=False)
        folders += [resolve_path(cfg["paths"]["runs_dir"]), resolve_path(cfg["paths"]["data_dir"])]
    except Exception:  # noqa: BLE001 - a bad override was said already; the other folders still count
        pass
    try:
        from prefect.settings import get_current_settings

        folders.append(Path(get_current_settings().home).expanduser())
    except Exception:  # noqa: BLE001
        pass
    folders.append(Path(tempfile.gettempdir()))
    return folders


def _free(folder: Path) -> int | None:
    for candidate in (folder, *folder.parents):  # a runs folder not made yet: its disk is its parent's
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def disk_full_sentence(exc: BaseException, folders: list[Path]) -> str | None:
    """The sentence to print when `exc` came from a full disk; None when it did not."""
    if isinstance(exc, DiskFull):
        return str(exc)
    named = disk_full_folder(exc)
    if named:
        return str(DiskFull(named))
    free = [(space, folder) for folder in folders if (space := _free(folder)) is not None]
    if not free:
        return None
    space, folder = min(free, key=lambda item: item[0])
    if is_disk_full(exc) or space < NEARLY_FULL_BYTES:
        return str(DiskFull(folder))
    return None
