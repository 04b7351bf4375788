#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# tessera-sample's failure contract, which the build relies on: a usage error
# exits 2, an output it cannot write exits 1 with one "tessera-sample: error:"
# line, so a broken build step stops instead of leaving no sample behind.
#
# Usage: check-errors.sh TESSERA-SAMPLE SCRATCH-DIR

set -u
sample=$1
scratch=$2
failed=0

"$sample" >/dev/null 2>&1
rc=$?
if [ "$rc" -ne 2 ]; then
  echo "no arguments: expected exit status 2, got $rc"
  failed=1
fi

target=$scratch/no-such-dir/sample.png
message=$("$sample" "$target" 2>&1)
rc=$?
if [ "$rc" -ne 1 ]; then
  echo "unwritable output: expected exit status 1, got $rc"
  failed=1
fi
case $message in
  "tessera-sample: error: cannot open '$target' for writing: "*) ;;
  *)
    echo "unwritable output: unexpected message: $message"
    failed=1
    ;;
esac

exit $failed
