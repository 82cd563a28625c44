"""`amphora-ctl image`: upload amphora images to Glance, list them, pick the newest per tag."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from controller_stub import images

_LIST_COLUMNS = ("id", "name", "status", "created_at", "owner")
_PROP_COLUMNS = ("amphora_agent_version", "haproxy_version", "openssl_version",
                 "keepalived_version", "os_distro", "os_version", "architecture",
                 "amphora_build_id")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "image", help="amphora images in Glance",
        description="Upload amphora images to Glance and choose among them. Credentials come "
                    "from OS_CLOUD/clouds.yaml or OS_* variables; --os-endpoint talks to a "
                    "Glance without Keystone.")
    parser.add_argument("--cloud", default=os.environ.get("OS_CLOUD"),
                        help="clouds.yaml entry (default: $OS_CLOUD)")
    parser.add_argument("--os-endpoint", default=os.environ.get("AMPHORA_GLANCE_ENDPOINT"),
                        help="Glance URL without Keystone (default: $AMPHORA_GLANCE_ENDPOINT)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="image_command", metavar="ACTION", required=True)

    up = sub.add_parser("upload", help="upload IMAGE with its manifest's properties")
    up.add_argument("image", help="image file (.qcow2, .raw or .tar)")
    up.add_argument("--manifest", help="manifest JSON (default: IMAGE.manifest.json)")
    up.add_argument("--tag", action="append", default=[], help="extra tag (repeatable)")
    up.add_argument("--name", help="Glance image name (default: file name + build id)")
    up.add_argument("--visibility", default="private",
                    choices=("private", "shared", "community", "public"))
    up.add_argument("--owner", help="project that owns the image (admin only)")
    up.add_argument("--json", action="store_true", help="print the image as JSON")
    up.set_defaults(handler=_upload)

    ls = sub.add_parser("list", help="images with a tag, newest first")
    ls.add_argument("--tag", default=images.AMPHORA_TAG)
    ls.add_argument("--owner", help="only images of this project")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=_list)

    sel = sub.add_parser("select", help="the newest active image with a tag")
    sel.add_argument("--tag", default=images.AMPHORA_TAG)
    sel.add_argument("--owner", help="only images of this project")
    sel.add_argument("--json", action="store_true")
    sel.set_defaults(handler=_select)


def _connect(args: argparse.Namespace) -> Any:
    return images.connect(cloud=args.cloud, endpoint=args.os_endpoint)


def _upload(args: argparse.Namespace) -> int:
    info = images.upload_image(_connect(args), args.image, manifest=args.manifest,
                               tags=args.tag, name=args.name, visibility=args.visibility,
                               owner=args.owner)
    if args.json:
        print(json.dumps(info.as_dict(), indent=2, sort_keys=True))
    else:
        print(f"uploaded {info.name} as {info.id} ({info.status}), tags: {', '.join(info.tags)}")
    return 0


def _list(args: argparse.Namespace) -> int:
    found = images.list_images(_connect(args), args.tag, owner=args.owner)
    if args.json:
        print(json.dumps([i.as_dict() for i in found], indent=2, sort_keys=True))
        return 0
    rows = [[*(str(getattr(i, c) or "") for c in _LIST_COLUMNS),
             *(i.properties.get(p, "") for p in _PROP_COLUMNS)] for i in found]
    print(_table([*_LIST_COLUMNS, *_PROP_COLUMNS], rows))
    return 0


def _select(args: argparse.Namespace) -> int:
    info = images.select_image(_connect(args), args.tag, owner=args.owner)
    print(json.dumps(info.as_dict(), indent=2, sort_keys=True) if args.json else info.id)
    return 0


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
