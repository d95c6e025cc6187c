"""`nasscore data add|list|download`: the real calibration images the service scores with. They are stored
in the database (content-addressed), so every process that reaches it — API replicas, workers, a local
`nasscore batch` — uses exactly the same images without sharing a file system."""

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli._common import add_settings_arguments, fail, settings_from_args

if TYPE_CHECKING:  # imported where used at run time, to keep the CLI's start-up light
    from scorers.calibration import ImageSet

DATA_SETTINGS = ("home", "database_url", "data_dir")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="add, list or download real calibration data",
        description="Manage the real calibration images stored in the database. A dataset with none can "
        "still be scored with synthetic data; cifar10 falls back to a small real set shipped with nasscore.",
    )
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    add = commands.add_parser(
        "add",
        help="store real images for a dataset (they become its calibration data)",
        description="Read DATASET's training images from PATH (an .npz with uint8 `images` N×3×H×W or "
        "N×H×W×3 and integer `labels`, or the python-format CIFAR folder, read without unpickling code), "
        "store them in the database under their SHA-256, and make them the images new configurations of "
        "DATASET draw their calibration batch from. Legacy configurations made from the same file are revived.",
    )
    add.add_argument("dataset", help="cifar10, cifar100 or imagenet16-120")
    add.add_argument("path", type=Path, help="an .npz file or a CIFAR python-format folder")
    add_settings_arguments(add, DATA_SETTINGS)
    add.set_defaults(handler=_add)

    listing = commands.add_parser("list", help="datasets and their stored real data")
    add_settings_arguments(listing, DATA_SETTINGS)
    listing.set_defaults(handler=_list)

    download = commands.add_parser(
        "download",
        help="download a CIFAR training set, check its MD5 and add it",
        description="Download the official CIFAR archive, check its published MD5, convert its training split "
        "to DATA_DIR/<dataset>.npz and add it (as `nasscore data add` does).",
    )
    download.add_argument("dataset", choices=("cifar10", "cifar100"))
    download.add_argument("--url", help="download from this address instead (a mirror); default: the official one")
    download.add_argument("--md5", help="expected MD5 of the archive at --url (default: the published one)")
    add_settings_arguments(download, DATA_SETTINGS)
    download.set_defaults(handler=_download)


def _add(args: argparse.Namespace) -> int:
    from app.services.calibration import read_operator_images
    from app.services.errors import ServiceError

    try:
        images = read_operator_images(args.dataset, args.path, "PATH")
    except ServiceError as error:
        return fail(error.message)
    return _store(args, images)


def _store(args: argparse.Namespace, images: "ImageSet") -> int:
    from app.runtime import Runtime
    from app.services.calibration import add_pool

    runtime = Runtime(settings_from_args(args))
    try:
        runtime.prepare()
        with runtime.database.session() as session:
            add_pool(session, runtime.store, images)
    except RuntimeError as error:
        return fail(str(error))
    finally:
        runtime.database.dispose()
    print(f"{images.dataset}: {len(images)} images, sha256:{images.digest} ({images.origin})")
    print(f"new {images.dataset} configurations now draw their calibration batch from these images")
    return 0


def _list(args: argparse.Namespace) -> int:
    from app.runtime import Runtime
    from app.services.calibration import add_command, describe_datasets

    runtime = Runtime(settings_from_args(args))
    try:
        runtime.prepare()
        with runtime.database.read_session() as session:
            described = describe_datasets(session)
    except RuntimeError as error:
        return fail(str(error))
    finally:
        runtime.database.dispose()
    print(f"{'dataset':<16}{'images':>8}  {'digest':<14}origin")
    for data in described:
        if data.pool_digest is not None:  # data.real
            print(f"{data.dataset:<16}{data.images:>8}  {data.pool_digest[:12]:<14}{data.origin}")
        else:
            print(f"{data.dataset:<16}{'-':>8}  {'-':<14}none (synthetic only; add with {add_command(data.dataset)})")
    return 0


def _download(args: argparse.Namespace) -> int:
    from app.services.calibration import read_operator_images
    from app.services.downloads import DownloadError, download_dataset

    settings = settings_from_args(args)
    try:
        path = download_dataset(args.dataset, settings.resolved_data_dir, url=args.url, md5=args.md5)
    except DownloadError as error:
        return fail(str(error))
    print(f"saved {path}")
    return _store(args, read_operator_images(args.dataset, path, "PATH"))
