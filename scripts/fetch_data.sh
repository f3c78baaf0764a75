#!/usr/bin/env bash
# Make the offline Fashion-MNIST available: the Debian package dataset-fashion-mnist puts
# the four idx files in /usr/share/datasets/fashion-mnist, where drsl_utils.data looks.
# Never fatal: without it, digits still works and loaders explain what to do.
set -u
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ] || [ -f data/FashionMNIST/raw/train-images-idx3-ubyte ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing the Debian package dataset-fashion-mnist (about 31 MB)..."
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; } >/dev/null 2>&1 \
    || echo "warning: apt-get could not install dataset-fashion-mnist" >&2
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  echo "note: Fashion-MNIST not found; install it with: sudo apt-get install -y dataset-fashion-mnist" >&2
else
  echo "note: Fashion-MNIST not found; put the four idx files in data/FashionMNIST/raw/ (see data/README.md)" >&2
fi
exit 0
