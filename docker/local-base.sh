#!/bin/bash
# Builds the image's `workstation` stage (the project's own steps: COPY, the Makefile's apt
# packages, the venv with pip, the Fast DDS environment, the user, the entrypoint) on a local
# Debian rootfs, where the CUDA base and packages.ros.org cannot be reached, then runs the
# image. Same Dockerfile, same stage, same lines: only PROJECT_BASE differs (the `ros` stage
# in the real image) and the `ros` stage is not built.
#
#   docker/local-base.sh [--keep]          # from the checkout's root, as root, with podman
#   docker/local-base.sh --check-only      # step 4 alone, on an image kept by --keep
#
# Steps (each timed in the log):
#   1. a Debian bookworm rootfs with mmdebstrap (minbase, ca-certificates, make and the
#      libraries a CPython needs) holding a Python 3.12: bookworm has 3.11, so a CPython 3.12
#      built on bookworm (pyenv's, found like the Makefile finds one, or LOCAL_PYTHON_PREFIX)
#      is copied into /usr/local and checked to import its C modules inside the rootfs;
#   2. `podman import` as LOCAL_BASE_IMAGE;
#   3. `podman build --target workstation --build-arg PROJECT_BASE=LOCAL_BASE_IMAGE`, with
#      this machine's pip configuration and package indexes mounted read-only for the build
#      only (LOCAL_BUILD_MOUNTS; nothing of them is written into the image);
#   4. checks in the image: the user, the entrypoint without ROS, `dojo --help`, imports,
#      the Fast DDS profile, the ament index entry, an rclpy node;
#   5. without --keep, the images and the rootfs are removed again.
#
# Environment: PODMAN (default: podman --storage-driver=vfs --runtime=runc), WORK (default
# /tmp/vla-dojo-local-base), LOG (default $WORK/local-base.log), MIRROR, LOCAL_PYTHON_PREFIX,
# LOCAL_BASE_IMAGE, IMAGE, LOCAL_BUILD_MOUNTS (space-separated host paths, mounted at the
# same place), RUN_ULIMITS (podman run's --ulimit options for the checks).
set -euo pipefail

keep=0
check_only=0
for arg in "$@"; do
  case "$arg" in
    --keep) keep=1 ;;
    --check-only) check_only=1; keep=1 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "local-base.sh: unknown argument '$arg' (--keep, --check-only, --help)" >&2; exit 2 ;;
  esac
done

die() { echo "local-base.sh: error: $*" >&2; exit 1; }

[ -f docker/Dockerfile ] && [ -f Makefile ] || die "run it from the checkout's root (docker/Dockerfile not found in $PWD)"
[ "$(id -u)" = 0 ] || die "run it as root (mmdebstrap's root mode and podman's rootful storage)"
command -v podman >/dev/null || die "podman is not installed (apt-get install podman)"
command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap)"

read -r -a PODMAN <<<"${PODMAN:-podman --storage-driver=vfs --runtime=runc}"
WORK="${WORK:-/tmp/vla-dojo-local-base}"
LOG="${LOG:-$WORK/local-base.log}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
LOCAL_BASE_IMAGE="${LOCAL_BASE_IMAGE:-localhost/vla-dojo-local-base:bookworm}"
IMAGE="${IMAGE:-localhost/vla-dojo:local}"
if [ -z "${LOCAL_PYTHON_PREFIX:-}" ]; then
  LOCAL_PYTHON_PREFIX="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12* 2>/dev/null | sort -V | tail -n 1 || true)"
fi
[ -x "${LOCAL_PYTHON_PREFIX}/bin/python3.12" ] \
  || die "no CPython 3.12 prefix (LOCAL_PYTHON_PREFIX='${LOCAL_PYTHON_PREFIX}'): set it to a 3.12 built on Debian bookworm"
LOCAL_BUILD_MOUNTS="${LOCAL_BUILD_MOUNTS:-/etc/pip.conf /etc/xdg/pip /opt/pypi /opt/pypi-more /opt/wheels /etc/ssl/certs/ca-certificates.crt}"

# runc may not raise a container's limits past what this machine grants it
RUN_ULIMITS="${RUN_ULIMITS:---ulimit nofile=1024:1024 --ulimit nproc=1024:1024}"
ulimit -n 1024 2>/dev/null || true
mkdir -p "$WORK"
exec > >(tee -a "$LOG") 2>&1
echo "== local-base.sh $(date -u +%FT%TZ) in $PWD ($(git rev-parse --short HEAD 2>/dev/null || echo '?')), log $LOG"

step_start=0
step() { step_start=$SECONDS; echo; echo "== $* ($(date -u +%T))"; }
step_done() { echo "-- done in $((SECONDS - step_start)) s"; }

build_s="" size=""
if [ "$check_only" = 0 ]; then
# 1. the rootfs -----------------------------------------------------------------------------
step "rootfs: Debian bookworm minbase with ${LOCAL_PYTHON_PREFIX} as /usr/local"
rootfs="$WORK/rootfs.tar"
rm -f "$rootfs"
# the shared libraries CPython's own extension modules link (ssl, ctypes, sqlite3, lzma, bz2,
# readline, curses, uuid, pyexpat, nis); make and ca-certificates as the image's base needs
packages=ca-certificates,make,libssl3,libffi8,libsqlite3-0,libbz2-1.0,liblzma5,libreadline8
packages=$packages,libncursesw6,zlib1g,libuuid1,libexpat1,libnsl2,libtirpc3
# hook: copy the prefix in (bin, lib, include), index /usr/local/lib for libpython, and check
py=$LOCAL_PYTHON_PREFIX
nice -n 10 mmdebstrap --mode=root --variant=minbase --include="$packages" \
  --customize-hook="copy-in $py/bin $py/lib $py/include /usr/local" \
  --customize-hook='chroot "$1" ldconfig' \
  --customize-hook='chroot "$1" /usr/local/bin/python3.12 -c "import ssl, ctypes, sqlite3, lzma, bz2, zlib, readline, uuid, pyexpat, ensurepip, venv; print(\"python in the rootfs:\", __import__(\"sys\").version.split()[0], ssl.OPENSSL_VERSION)"' \
  bookworm "$rootfs" \
  "deb $MIRROR bookworm main" "deb $MIRROR bookworm-updates main" \
  "deb ${MIRROR%/debian}/debian-security bookworm-security main" \
  || die "mmdebstrap failed (is $MIRROR reachable? see $LOG)"
ls -l "$rootfs"
step_done

# 2. the base image -------------------------------------------------------------------------
step "import $rootfs as $LOCAL_BASE_IMAGE"
"${PODMAN[@]}" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' "$rootfs" "$LOCAL_BASE_IMAGE" || die "podman import failed"
rm -f "$rootfs"
step_done

# 3. the project's stage on it --------------------------------------------------------------
step "build docker/Dockerfile --target workstation on $LOCAL_BASE_IMAGE as $IMAGE"
mounts=()
for path in $LOCAL_BUILD_MOUNTS; do
  if [ -e "$path" ]; then mounts+=(-v "$path:$path:ro"); else echo "not mounted (absent): $path"; fi
done
echo "build-time mounts: ${mounts[*]}"
build_start=$SECONDS
# --layers=false: one layer for the stage (vfs copies every layer whole); host network: the
# build reaches the package registries the way this machine does
nice -n 10 "${PODMAN[@]}" build --layers=false --format=docker --network=host \
  --target workstation --build-arg PROJECT_BASE="$LOCAL_BASE_IMAGE" \
  "${mounts[@]}" -f docker/Dockerfile -t "$IMAGE" . \
  || die "podman build failed (see $LOG)"
build_s=$((SECONDS - build_start))
size="$("${PODMAN[@]}" image inspect --format '{{.Size}}' "$IMAGE")"
echo "built $IMAGE in ${build_s} s, $((size / 1000000)) MB"
step_done
fi

# 4. checks ---------------------------------------------------------------------------------
# One container (vfs copies the whole image for each one), started through the image's own
# ENTRYPOINT and CMD override; inside, the entrypoint is run again for each command it handles.
step "checks in $IMAGE"
fail=0
config="$("${PODMAN[@]}" image inspect --format '{{json .Config.Entrypoint}} {{json .Config.Cmd}} {{.Config.User}} {{json .Config.Env}}' "$IMAGE")"
echo "image config: $config"
for want in '["/usr/local/bin/vla-dojo-entrypoint"]' '["ros2","launch","vla_dojo","dojo.launch.py"]' ' 1000 '; do
  if [[ "$config" == *"$want"* ]]; then echo "ok: config has $want"; else echo "FAILED: config lacks $want"; fail=1; fi
done
if grep -Eq 'PIP_(INDEX|EXTRA|FIND|CONSTRAINT|CERT)|/opt/pypi|/opt/wheels' <<<"$config"; then
  echo "FAILED: the build's pip configuration is in the image's environment"; fail=1
else
  echo "ok: no pip configuration of the build in the image's environment"
fi
# shellcheck disable=SC2016  # expanded in the container
checks='
fail=0
ok() { echo "ok: $1"; }
bad() { echo "FAILED: $1"; fail=1; }
echo "id: $(id)"
[[ "$(id)" =~ uid=1000\(dojo\).*dialout.*video.*plugdev ]] && ok "non-root user dojo in dialout, video, plugdev" || bad user
[ "$PWD" = /data ] && touch /data/.w && rm /data/.w && ok "/data is the working directory, writable" || bad "/data"
left=0  # buildah leaves an empty mount point where the base had none; no content may stay
for p in /opt/pypi /opt/pypi-more /opt/wheels /etc/pip.conf /etc/xdg/pip; do
  if { [ -d "$p" ] && [ -n "$(ls -A "$p")" ]; } || { [ -f "$p" ] && [ -s "$p" ]; }; then
    bad "the build mount $p left content in the image"; left=1
  fi
done
[ $left = 1 ] || ok "no content of the build mounts in the image"
out="$(vla-dojo-entrypoint dojo --help 2>&1)"; rc=$?
printf "%s\n" "$out" | head -n 4
[ $rc = 0 ] && [[ "$out" == *"no ROS 2 here"* ]] && [[ "$out" == *"dojo run [key=value"* ]] \
  && ok "entrypoint: dojo --help without ROS (said so, ran)" || bad "entrypoint dojo --help (exit $rc)"
out="$(vla-dojo-entrypoint ros2 launch vla_dojo dojo.launch.py 2>&1)"; rc=$?
printf "%s\n" "$out" | tail -n 1
[ $rc = 127 ] && [[ "$out" == *"ros2 comes with ROS 2"* ]] && ok "entrypoint: ros2 refused without ROS" || bad "entrypoint ros2 (exit $rc)"
"$VLA_DOJO_PREFIX/bin/python" - <<PY && ok "python: imports, Fast DDS profile, ament index, shims, rclpy node" || bad python
import os
from pathlib import Path
import mujoco, rclpy, torch, dojo, robot, policy, critic, episodes, calibration, teleop, replay
profile = Path(os.environ["FASTDDS_DEFAULT_PROFILES_FILE"])
assert profile.is_file(), profile
prefix = Path(os.environ["VLA_DOJO_PREFIX"])
assert (prefix / "share/ament_index/resource_index/packages/vla_dojo").is_file()
assert (prefix / "share/vla_dojo/launch/dojo.launch.py").is_file()
shims = sorted(p.name for p in (prefix / "lib/vla_dojo").iterdir())
print("torch", torch.__version__, "CUDA build", torch.version.cuda, "| mujoco", mujoco.__version__)
print("node shims:", " ".join(shims))
rclpy.init()
node = rclpy.create_node("local_base_check")
print("rclpy node:", node.get_fully_qualified_name(), os.environ["RMW_IMPLEMENTATION"])
node.destroy_node()
rclpy.shutdown()
PY
# the twin renders its cameras through EGL (MUJOCO_GL=egl); without a GPU, Mesa llvmpipe
"$VLA_DOJO_PREFIX/bin/python" - <<PY && ok "EGL render (the twin cameras)" || bad "EGL render"
import mujoco
m = mujoco.MjModel.from_xml_string("<mujoco><worldbody><light pos=\"0 0 1\"/><geom size=\".1\"/></worldbody></mujoco>")
with mujoco.Renderer(m, 48, 64) as r:
    d = mujoco.MjData(m)
    mujoco.mj_forward(m, d)
    r.update_scene(d)
    img = r.render()
print("EGL render:", img.shape, "mean", round(float(img.mean()), 1))
PY
exit $fail
'
# shellcheck disable=SC2086  # RUN_ULIMITS: words
"${PODMAN[@]}" run --rm --network=none $RUN_ULIMITS --shm-size=512m \
  "$IMAGE" bash -c "$checks" || fail=1
"${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "vla-dojo" || true
step_done

# 5. cleanup --------------------------------------------------------------------------------
if [ "$keep" = 0 ]; then
  step "removing $IMAGE and $LOCAL_BASE_IMAGE (--keep keeps them)"
  "${PODMAN[@]}" rmi -f "$IMAGE" "$LOCAL_BASE_IMAGE" || true
  "${PODMAN[@]}" image prune -f || true
  step_done
fi
[ "$fail" = 0 ] || die "a check failed (see $LOG)"
if [ "$check_only" = 0 ]; then
  echo "== local proof passed: $IMAGE built in ${build_s} s ($((size / 1000000)) MB)"
else
  echo "== checks passed on $IMAGE"
fi
