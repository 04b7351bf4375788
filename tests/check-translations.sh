#!/bin/sh
# SPDX-License-Identifier: GPL-3.0-or-later
# Every user-visible string is translated in every language of po/LINGUAS:
# extract the strings afresh from po/POTFILES.in and compare.
#   check-translations.sh SOURCE_ROOT
set -eu
root=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
grep -v '^#' "$root/po/POTFILES.in" | sed '/^$/d' > "$tmp/files"
(cd "$root" && xgettext --from-code=UTF-8 --add-comments=Translators \
  --keyword=_ --keyword=N_ --keyword=C_:1c,2 --keyword=NC_:1c,2 \
  --files-from="$tmp/files" --package-name=tessera -o "$tmp/tessera.pot")
status=0
for lang in $(grep -v '^#' "$root/po/LINGUAS"); do
  msgfmt --check -o /dev/null "$root/po/$lang.po" || status=1
  if ! msgcmp "$root/po/$lang.po" "$tmp/tessera.pot"; then
    echo "po/$lang.po lacks translations of the strings above" >&2
    status=1
  fi
done
exit $status
