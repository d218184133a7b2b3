#!/usr/bin/env bash
# System libraries MuJoCo's offscreen renderer needs (EGL through Mesa). Installed only when
# missing, so machines that have them never touch apt.
set -euo pipefail
needed=(libegl1 libegl-mesa0 libgl1-mesa-dri libgles2)
missing=()
for pkg in "${needed[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "installing system packages: ${missing[*]}"
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi
