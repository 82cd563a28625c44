"""Image benchmark: build time, image size, boot-to-agent-ready time (one JSON object per result).

Builds an image with the default options (unless ``--image`` names one built
earlier) and boots it ``--boots`` times under qemu TCG, timing each boot from
qemu start until ``GET /1.0/info`` answers over mTLS.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="existing qcow2 (skip the build)")
    parser.add_argument("--boots", type=int, default=1, help="boots to time (default 1)")
    args = parser.parse_args(argv)
    if args.boots < 0:
        parser.error("--boots must be >= 0")
    with tempfile.TemporaryDirectory(prefix="bench-image.") as tmp:
        work = Path(tmp)
        if args.image:
            image = existing_image(args.image)
        else:
            image = build_image(work / "out")
            emit("image", metric="build_time", value=round(image.build_seconds or 0, 1),
                 unit="s", options="default (bookworm, qcow2, 2 GB)")
        emit("image", metric="image_size", value=image.size_bytes, unit="bytes",
             image=image.path.name)
        for boot in range(args.boots):
            vm_dir = work / f"vm{boot}"
            vm_dir.mkdir()
            iso, identity = make_config_drive(vm_dir)
            vm = AmphoraVM(image.path, iso, vm_dir)
            vm.start()
            try:
                _client, info, seconds = vm.wait_for_agent(identity)
            finally:
                vm.stop()
            emit("image", metric="boot_to_agent_ready", value=round(seconds, 1), unit="s",
                 boot=boot + 1, accel="tcg", haproxy_version=info["haproxy_version"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
