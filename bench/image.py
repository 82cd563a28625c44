"""Image benchmark: build time, image size, boot-to-agent-ready time per image variant.

For each ``--variant`` (``bookworm``: the default image; ``trixie``: Debian 13
with HAProxy 3.0; ``next``: Debian 13 with HAProxy 3.2 from the next Debian
release's binary package; ``source``: Debian 13 with HAProxy built from the
next Debian release's source) it builds the image, unless ``--image VARIANT=PATH``
names one built earlier, and boots it ``--boots`` times under qemu TCG, timing
each boot from qemu start until ``GET /1.0/info`` answers over mTLS. One JSON
object per result.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit
from controller_stub.compute.qemu import (
    AmphoraVM,
    build_image,
    existing_image,
    make_config_drive,
)

VARIANTS: dict[str, tuple[str, ...]] = {
    "bookworm": (),
    "trixie": ("--release", "trixie"),
    "next": ("--release", "trixie", "--haproxy-apt-source",
             "deb http://deb.debian.org/debian sid main",
             "--haproxy-key", "/usr/share/keyrings/debian-archive-keyring.gpg"),
    "source": ("--release", "trixie", "--haproxy-source"),
}
SIZE_LIMIT = {"bookworm": 350 * 2**20}  # the default image must stay below this


def _reuse(values: list[str]) -> dict[str, Path]:
    images = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or name not in VARIANTS:
            raise SystemExit(f"--image wants VARIANT=PATH with VARIANT in {', '.join(VARIANTS)}")
        images[name] = Path(path)
    return images


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS),
                        help="image variant to measure (repeatable; default: bookworm)")
    parser.add_argument("--image", action="append", default=[], metavar="VARIANT=PATH",
                        help="existing qcow2 for a variant (skip its build)")
    parser.add_argument("--boots", type=int, default=1, help="boots to time (default 1)")
    args = parser.parse_args(argv)
    if args.boots < 0:
        parser.error("--boots must be >= 0")
    reuse = _reuse(args.image)
    with tempfile.TemporaryDirectory(prefix="bench-image.") as tmp:
        work = Path(tmp)
        for variant in args.variant or ["bookworm"]:
            if variant in reuse:
                image = existing_image(reuse[variant])
            else:
                image = build_image(work / variant, name=f"amphora-{variant}",
                                    extra_args=VARIANTS[variant])
                emit("image", metric="build_time", value=round(image.build_seconds or 0, 1),
                     unit="s", variant=variant, options=" ".join(VARIANTS[variant]) or "default")
            emit("image", metric="image_size", value=image.size_bytes, unit="bytes",
                 variant=variant, image=image.path.name,
                 haproxy_version=image.manifest["haproxy_version"],
                 limit=SIZE_LIMIT.get(variant))
            for boot in range(args.boots):
                vm_dir = work / f"{variant}-vm{boot}"
                vm_dir.mkdir(parents=True)
                iso, identity = make_config_drive(vm_dir)
                vm = AmphoraVM(image.path, iso, vm_dir)
                vm.start()
                try:
                    _client, info, seconds = vm.wait_for_agent(identity)
                finally:
                    vm.stop()
                emit("image", metric="boot_to_agent_ready", value=round(seconds, 1), unit="s",
                     variant=variant, boot=boot + 1, accel="tcg",
                     haproxy_version=info["haproxy_version"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
