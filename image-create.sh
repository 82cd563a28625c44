#!/bin/bash
# Build an amphora image with diskimage-builder and the elements in elements/,
# record what is inside it (manifest), checksum it, and optionally upload it to Glance.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROG=$(basename "$0")

usage() {
    cat <<EOF
Usage: ${PROG} [options]

Build an amphora image (Debian minimal + HAProxy + keepalived + the Amphora
agent) and write IMAGE, IMAGE.manifest.json and IMAGE.sha256.

Output:
  -o, --output-dir DIR    where the image goes (default: ${REPO}/out)
  -n, --name NAME         image file name without extension (default: amphora-x64-haproxy,
                          amphora-arm64-haproxy for arm64)
  -f, --format FMT        qcow2 (default), raw or tar
  -s, --image-size GB     disk size in GB (default: 2; ignored for tar)

Content:
  -r, --release NAME      Debian release (default: bookworm)
  -a, --arch ARCH         amd64 (default) or arm64
      --agent-version V   install amphora-agent==V from PyPI instead of this tree
      --with-sshd         keep an SSH server (default: none)
      --cpu-pinning       tuned profile leaving CPU 0 to the system, others to HAProxy
      --time-sync WHAT    chrony (default), timesyncd or none
      --haproxy-source    build HAProxy inside the image from the source package of a
                          newer Debian release (slow; see --haproxy-source-suite)
      --haproxy-source-suite S
                          suite whose haproxy source is built (default: sid)
      --haproxy-apt-source L
                          apt line for a newer HAProxy ("deb URL SUITE COMPONENT")
      --haproxy-key FILE  key that signs --haproxy-apt-source
  -e, --element NAME      add an element (repeatable); ELEMENTS_PATH is honoured
  -c, --cache-dir DIR     build cache: debootstrap tarball, wheels (default: ~/.cache/amphora-image)

Glance:
      --upload            upload to Glance after the build (OpenStack credentials from the
                          environment or clouds.yaml: OS_CLOUD, OS_AUTH_URL, ...)
      --tag TAG           extra Glance tag besides "amphora" (repeatable)
      --cloud NAME        clouds.yaml entry to use

Other:
      --check             only check the prerequisites
  -h, --help              this help

A default build takes about 2.5-3 minutes here (the debootstrap cache
is reused by later runs) and needs root, about 6 GB free disk, debootstrap,
qemu-img, kpartx or partx, sgdisk, mkfs.ext4 and diskimage-builder
(make .venv-dib).
EOF
}

die() {
    echo "${PROG}: error: $*" >&2
    exit 1
}

info() {
    echo "${PROG}: $*" >&2
}

# --- options -----------------------------------------------------------------
OUTPUT_DIR="${REPO}/out"
NAME=""
FORMAT=qcow2
IMAGE_SIZE=2
RELEASE=bookworm
ARCH=amd64
AGENT_VERSION=""
NO_SSHD=1
CPU_PINNING=0
TIME_SYNC=chrony
HAPROXY_SOURCE=0
HAPROXY_SOURCE_SUITE=sid
HAPROXY_APT_SOURCE=""
HAPROXY_KEY=""
EXTRA_ELEMENTS=()
CACHE_DIR="${HOME:-/root}/.cache/amphora-image"
UPLOAD=0
TAGS=()
CLOUD=""
CHECK_ONLY=0

need_value() {
    if [ $# -lt 2 ] || [ -z "$2" ]; then
        die "$1 needs a value (see --help)"
    fi
}

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        -o|--output-dir) need_value "$@"; OUTPUT_DIR=$2; shift 2 ;;
        -n|--name) need_value "$@"; NAME=$2; shift 2 ;;
        -f|--format) need_value "$@"; FORMAT=$2; shift 2 ;;
        -s|--image-size) need_value "$@"; IMAGE_SIZE=$2; shift 2 ;;
        -r|--release) need_value "$@"; RELEASE=$2; shift 2 ;;
        -a|--arch) need_value "$@"; ARCH=$2; shift 2 ;;
        --agent-version) need_value "$@"; AGENT_VERSION=$2; shift 2 ;;
        --with-sshd) NO_SSHD=0; shift ;;
        --no-sshd) NO_SSHD=1; shift ;;
        --cpu-pinning) CPU_PINNING=1; shift ;;
        --time-sync) need_value "$@"; TIME_SYNC=$2; shift 2 ;;
        --haproxy-source) HAPROXY_SOURCE=1; shift ;;
        --haproxy-source-suite) need_value "$@"; HAPROXY_SOURCE_SUITE=$2; shift 2 ;;
        --haproxy-apt-source) need_value "$@"; HAPROXY_APT_SOURCE=$2; shift 2 ;;
        --haproxy-key) need_value "$@"; HAPROXY_KEY=$2; shift 2 ;;
        -e|--element) need_value "$@"; EXTRA_ELEMENTS+=("$2"); shift 2 ;;
        -c|--cache-dir) need_value "$@"; CACHE_DIR=$2; shift 2 ;;
        --upload) UPLOAD=1; shift ;;
        --tag) need_value "$@"; TAGS+=("$2"); shift 2 ;;
        --cloud) need_value "$@"; CLOUD=$2; shift 2 ;;
        --check) CHECK_ONLY=1; shift ;;
        *) die "unknown option: $1 (see --help)" ;;
    esac
done

case "${FORMAT}" in qcow2|raw|tar) ;; *) die "--format must be qcow2, raw or tar, not '${FORMAT}'" ;; esac
case "${ARCH}" in
    amd64) UNAME_ARCH=x86_64; NAME=${NAME:-amphora-x64-haproxy} ;;
    arm64) UNAME_ARCH=aarch64; NAME=${NAME:-amphora-arm64-haproxy} ;;
    *) die "--arch must be amd64 or arm64, not '${ARCH}'" ;;
esac
case "${TIME_SYNC}" in chrony|timesyncd|none) ;; *) die "--time-sync must be chrony, timesyncd or none" ;; esac
[[ "${IMAGE_SIZE}" =~ ^[1-9][0-9]*$ ]] || die "--image-size must be a whole number of GB, not '${IMAGE_SIZE}'"
[[ "${NAME}" =~ ^[A-Za-z0-9._-]+$ ]] || die "--name may only use letters, digits, '.', '_' and '-'"
case "${RELEASE}" in
    bookworm) TARGET_PY=3.11 ;;
    trixie) TARGET_PY=3.13 ;;
    *) die "--release must be bookworm or trixie (the agent needs Python >= 3.11), not '${RELEASE}'" ;;
esac
if [ -n "${HAPROXY_APT_SOURCE}" ] && [ ! -f "${HAPROXY_KEY}" ]; then
    die "--haproxy-apt-source needs --haproxy-key FILE (the source's signing key)"
fi
[[ "${HAPROXY_SOURCE_SUITE}" =~ ^[a-z][a-z0-9-]{1,30}$ ]] \
    || die "--haproxy-source-suite must be a Debian suite name, not '${HAPROXY_SOURCE_SUITE}'"
if [ "${HAPROXY_SOURCE}" -eq 1 ] && [ -n "${HAPROXY_APT_SOURCE}" ]; then
    die "--haproxy-source and --haproxy-apt-source are two ways to a newer HAProxy: pick one"
fi

# --- prerequisites -----------------------------------------------------------
DIB_BIN=""
for candidate in "${REPO}/.venv-dib/bin" "$(dirname "$(command -v disk-image-create 2>/dev/null || echo /nonexistent/x)")"; do
    if [ -x "${candidate}/disk-image-create" ]; then
        DIB_BIN=${candidate}
        break
    fi
done

free_gb() {
    local dir=$1
    while [ ! -d "${dir}" ]; do dir=$(dirname "${dir}"); done
    df -P -B1G "${dir}" | awk 'NR == 2 { print $4 }'
}

has_device_mapper() {
    [ -e /dev/mapper/control ] && grep -qw device-mapper /proc/misc 2>/dev/null
}

check_prerequisites() {
    local missing=() problems=() tool
    [ "$(id -u)" -eq 0 ] || problems+=("must run as root (debootstrap, loop devices, chroot)")
    [ -n "${DIB_BIN}" ] || problems+=("diskimage-builder not found: run 'make .venv-dib'")
    for tool in debootstrap qemu-img sudo losetup partx sgdisk sfdisk mkfs.ext4 mkfs.vfat \
                python3 git rsync sha256sum; do
        command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
    done
    if has_device_mapper; then
        command -v kpartx >/dev/null 2>&1 || missing+=("kpartx")
    fi
    if [ "${ARCH}" != "$(dpkg --print-architecture)" ] \
        && [ ! -e "/proc/sys/fs/binfmt_misc/qemu-${UNAME_ARCH}" ]; then
        problems+=("building ${ARCH} on $(dpkg --print-architecture) needs qemu-user-static binfmt support")
    fi
    local dir
    for dir in "${OUTPUT_DIR}" "${CACHE_DIR}" "${TMPDIR:-/tmp}"; do
        if [ "$(free_gb "${dir}")" -lt 6 ]; then
            problems+=("less than 6 GB free for ${dir} ($(free_gb "${dir}") GB)")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        problems+=("missing tools: ${missing[*]} (install: make apt)")
    fi
    if [ ${#problems[@]} -gt 0 ]; then
        local p
        for p in "${problems[@]}"; do echo "${PROG}: prerequisite: ${p}" >&2; done
        die "prerequisites not met"
    fi
    info "prerequisites OK (diskimage-builder in ${DIB_BIN})"
}

check_prerequisites
[ "${CHECK_ONLY}" -eq 1 ] && exit 0

# --- mirrors: the ones apt uses on this host -----------------------------------
apt_uri_for_suite() {
    # Print the first URI of an apt source (one-line or deb822) that serves $1.
    local suite=$1
    python3 - "${suite}" /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        /etc/apt/sources.list.d/*.sources <<'PY' 2>/dev/null || true
import sys
suite, paths = sys.argv[1], sys.argv[2:]
for path in paths:
    try:
        text = open(path).read()
    except OSError:
        continue
    if path.endswith(".sources"):
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith(("#", " ")):
                    key, value = line.split(":", 1)
                    fields[key.strip().lower()] = value.split()
            if "deb" in fields.get("types", []) and suite in fields.get("suites", []):
                print(fields["uris"][0])
                sys.exit(0)
    else:
        for line in text.splitlines():
            words = [w for w in line.split() if not w.startswith("[")]
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                print(words[1])
                sys.exit(0)
PY
}

HOST_CODENAME=$(sed -n 's/^VERSION_CODENAME=//p' /etc/os-release | tr -d '"')
MIRROR=$(apt_uri_for_suite "${HOST_CODENAME}" | head -n 1)
SECURITY_MIRROR=$(apt_uri_for_suite "${HOST_CODENAME}-security" | head -n 1)
export DIB_DISTRIBUTION_MIRROR=${DIB_DISTRIBUTION_MIRROR:-${MIRROR:-http://deb.debian.org/debian}}
export DIB_DEBIAN_SECURITY_MIRROR=${DIB_DEBIAN_SECURITY_MIRROR:-${SECURITY_MIRROR:-http://security.debian.org/}}
info "Debian mirror ${DIB_DISTRIBUTION_MIRROR}, security ${DIB_DEBIAN_SECURITY_MIRROR}"

# --- wheelhouse: the agent and its dependencies, built on the host -------------
mkdir -p "${OUTPUT_DIR}" "${CACHE_DIR}"
OUTPUT_DIR=$(cd "${OUTPUT_DIR}" && pwd)
CACHE_DIR=$(cd "${CACHE_DIR}" && pwd)
WHEELHOUSE="${CACHE_DIR}/wheelhouse-${RELEASE}-${ARCH}"
rm -rf "${WHEELHOUSE}"
mkdir -p "${WHEELHOUSE}"

HOST_PY=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ -n "${AGENT_VERSION}" ]; then
    AGENT_REQ="amphora-agent==${AGENT_VERSION}"
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "${WHEELHOUSE}" "${AGENT_REQ}" \
        || die "cannot fetch ${AGENT_REQ} from the package index"
else
    # The agent's own distribution: agent and wire contract, not the controller.
    # setuptools reuses build/lib, which would carry modules deleted since.
    rm -rf "${REPO}/packaging/amphora-agent/build"
    python3 -m pip wheel --quiet --no-deps -w "${WHEELHOUSE}" "${REPO}/packaging/amphora-agent" \
        || die "cannot build the amphora-agent wheel from ${REPO}/packaging/amphora-agent"
fi
AGENT_WHEEL=$(ls "${WHEELHOUSE}"/amphora_agent-*.whl)
if [ "${HOST_PY}" = "${TARGET_PY}" ] && [ "${ARCH}" = "$(dpkg --print-architecture)" ]; then
    python3 -m pip wheel --quiet -w "${WHEELHOUSE}" "${AGENT_WHEEL}" \
        || die "cannot build the agent's dependencies into ${WHEELHOUSE}"
else
    platforms=()
    for tag in manylinux2014 manylinux_2_28 manylinux_2_31 manylinux_2_34 manylinux_2_36; do
        platforms+=(--platform "${tag}_${UNAME_ARCH}")
    done
    python3 -m pip download --quiet --only-binary=:all: --implementation cp \
        --python-version "${TARGET_PY}" "${platforms[@]}" -d "${WHEELHOUSE}" "${AGENT_WHEEL}" \
        || die "cannot fetch binary wheels for Python ${TARGET_PY}/${ARCH}"
fi
info "wheelhouse: $(find "${WHEELHOUSE}" -name '*.whl' | wc -l) wheels in ${WHEELHOUSE}"

# --- device-mapper: substitute kpartx when the kernel has none ---------------
COMPAT_DIR=""
cleanup() {
    [ -n "${COMPAT_DIR}" ] && rm -rf "${COMPAT_DIR}"
    return 0
}
trap cleanup EXIT

if [ "${FORMAT}" != tar ] && ! has_device_mapper; then
    COMPAT_DIR=$(mktemp -d /tmp/amphora-dib-compat.XXXXXX)
    cat > "${COMPAT_DIR}/kpartx" <<'EOF'
#!/bin/bash
# kpartx substitute for kernels without device-mapper: the loop driver's own
# partitions (partx) are linked where diskimage-builder expects /dev/mapper nodes.
set -euo pipefail
action=add
device=""
for arg in "$@"; do
    case "${arg}" in
        -*d*) action=del ;;
        -*) ;;
        *) device=${arg} ;;
    esac
done
[ -b "${device}" ] || { echo "kpartx substitute: not a block device: ${device}" >&2; exit 1; }
name=$(basename "${device}")
mkdir -p /dev/mapper
if [ "${action}" = add ]; then
    partx -a "${device}" 2>/dev/null || partx -u "${device}"
    udevadm settle 2>/dev/null || sleep 1
    for part in "/dev/${name}p"*; do
        [ -b "${part}" ] || continue
        ln -sf "${part}" "/dev/mapper/$(basename "${part}")"
        echo "add map $(basename "${part}") (partx, no device-mapper)"
    done
else
    rm -f "/dev/mapper/${name}p"*
    partx -d "${device}" 2>/dev/null || true
fi
EOF
    # diskimage-builder asks dmsetup to create the /dev/mapper nodes inside
    # containers; the substitute kpartx already made them.
    cat > "${COMPAT_DIR}/dmsetup" <<'EOF'
#!/bin/bash
set -euo pipefail
for arg in "$@"; do
    if [ "${arg}" = mknodes ]; then
        exit 0
    fi
done
echo "dmsetup substitute: no device-mapper in this kernel (asked: $*)" >&2
exit 1
EOF
    # As root, sudo only needs to run the command, with this PATH (sudo's
    # secure_path would hide the kpartx substitute).
    cat > "${COMPAT_DIR}/sudo" <<'EOF'
#!/bin/bash
set -euo pipefail
while [ $# -gt 0 ]; do
    case "$1" in
        -u|-g|-C|-D|-h|-p|-r|-t|-U) shift 2 ;;
        --) shift; break ;;
        -*) shift ;;
        *) break ;;
    esac
done
exec env "$@"
EOF
    chmod 0755 "${COMPAT_DIR}/kpartx" "${COMPAT_DIR}/dmsetup" "${COMPAT_DIR}/sudo"
    export PATH="${COMPAT_DIR}:${PATH}"
    info "this kernel has no device-mapper: kpartx is replaced by partx-created loop partitions"
    info "(linked under /dev/mapper), so the disk image is still partitioned and bootable"
fi

# --- build -------------------------------------------------------------------
BUILD_ID=$(python3 -c 'import uuid; print(uuid.uuid4())')
case "${FORMAT}" in
    qcow2) EXT=qcow2 ;;
    raw) EXT=raw ;;
    tar) EXT=tar ;;
esac
IMAGE="${OUTPUT_DIR}/${NAME}.${EXT}"
MANIFEST="${IMAGE}.manifest.json"
CHECKSUM="${IMAGE}.sha256"
rm -f "${IMAGE}" "${MANIFEST}" "${CHECKSUM}"

ELEMENTS=(debian-minimal amphora-agent haproxy-amphora keepalived-amphora amphora-hardening amphora-manifest
    amphora-slim)
if [ "${FORMAT}" != tar ]; then
    ELEMENTS+=(vm)
fi
if [ "${HAPROXY_SOURCE}" -eq 1 ]; then
    ELEMENTS+=(haproxy-source)
fi
ELEMENTS+=("${EXTRA_ELEMENTS[@]}")

BUILD_OPTIONS=$(python3 - "${FORMAT}" "${RELEASE}" "${ARCH}" "${IMAGE_SIZE}" "${AGENT_VERSION}" \
    "${NO_SSHD}" "${CPU_PINNING}" "${TIME_SYNC}" "${HAPROXY_APT_SOURCE}" \
    "$([ "${HAPROXY_SOURCE}" -eq 1 ] && echo "${HAPROXY_SOURCE_SUITE}")" "${ELEMENTS[@]}" <<'PY'
import json
import sys

fmt, release, arch, size, agent, no_sshd, pinning, time_sync, haproxy, built = sys.argv[1:11]
print(json.dumps({
    "format": fmt, "release": release, "arch": arch, "image_size_gb": int(size),
    "agent_version": agent or None, "no_sshd": no_sshd == "1", "cpu_pinning": pinning == "1",
    "time_sync": time_sync, "haproxy_apt_source": haproxy or None,
    "haproxy_source_suite": built or None, "elements": sys.argv[11:],
}, sort_keys=True))
PY
)

export ELEMENTS_PATH="${REPO}/elements${ELEMENTS_PATH:+:${ELEMENTS_PATH}}"
export DIB_RELEASE="${RELEASE}"
export DIB_PYTHON_VERSION=3
export DIB_DEBOOTSTRAP_CACHE=1
export DIB_IMAGE_CACHE="${CACHE_DIR}/dib"
export DIB_APT_MINIMAL_CREATE_INTERFACES=0
export DIB_AMPHORA_SOURCE="${REPO}"
export DIB_AMPHORA_AGENT_WHEELHOUSE="${WHEELHOUSE}"
export DIB_AMPHORA_AGENT_VERSION="${AGENT_VERSION}"
export DIB_AMPHORA_NO_SSHD="${NO_SSHD}"
export DIB_AMPHORA_CPU_PINNING="${CPU_PINNING}"
export DIB_AMPHORA_TIME_SYNC="${TIME_SYNC}"
export DIB_HAPROXY_APT_SOURCE="${HAPROXY_APT_SOURCE}"
export DIB_HAPROXY_SOURCE_SUITE="${HAPROXY_SOURCE_SUITE}"
# A host on a frozen mirror turns apt's Valid-Until check off; the newer-HAProxy sources follow.
if apt-config dump 2>/dev/null | grep -qi '^Acquire::Check-Valid-Until "false"'; then
    export DIB_HAPROXY_SOURCE_CHECK_VALID_UNTIL=${DIB_HAPROXY_SOURCE_CHECK_VALID_UNTIL:-no}
    export DIB_HAPROXY_APT_CHECK_VALID_UNTIL=${DIB_HAPROXY_APT_CHECK_VALID_UNTIL:-no}
fi
export DIB_HAPROXY_APT_KEY="${HAPROXY_KEY}"
export DIB_AMPHORA_BUILD_ID="${BUILD_ID}"
export DIB_AMPHORA_BUILD_OPTIONS="${BUILD_OPTIONS}"
export DIB_AMPHORA_MANIFEST_OUT="${MANIFEST}"
export PATH="${DIB_BIN}:${PATH}"

DIB_ARGS=(-a "${ARCH}" -t "${FORMAT}" -o "${OUTPUT_DIR}/${NAME}")
if [ "${FORMAT}" != tar ]; then
    DIB_ARGS+=(--image-size "${IMAGE_SIZE}")
fi
info "building ${IMAGE} (${RELEASE}/${ARCH}, build ${BUILD_ID}): ${ELEMENTS[*]}"
started=$(date +%s)
disk-image-create "${DIB_ARGS[@]}" "${ELEMENTS[@]}" || die "disk-image-create failed (see above)"
elapsed=$(( $(date +%s) - started ))

[ -f "${IMAGE}" ] || die "diskimage-builder did not produce ${IMAGE}"
[ -s "${MANIFEST}" ] || die "the image has no manifest (amphora-manifest element did not run)"
(cd "${OUTPUT_DIR}" && sha256sum "$(basename "${IMAGE}")" > "$(basename "${CHECKSUM}")")
info "built in ${elapsed}s: ${IMAGE} ($(du -h "${IMAGE}" | cut -f1)), ${MANIFEST}, ${CHECKSUM}"

# --- Glance ------------------------------------------------------------------
if [ "${UPLOAD}" -eq 1 ]; then
    CTL=(amphora-ctl)
    if [ -x "${REPO}/.venv/bin/python" ]; then
        CTL=("${REPO}/.venv/bin/python" -m controller_stub.cli)
    fi
    upload=("${CTL[@]}" image upload "${IMAGE}" --manifest "${MANIFEST}")
    for tag in "${TAGS[@]}"; do upload+=(--tag "${tag}"); done
    [ -n "${CLOUD}" ] && upload+=(--cloud "${CLOUD}")
    "${upload[@]}" || die "upload to Glance failed"
fi
