#!/bin/sh
# tools/hotrename.sh OBJCOPY OBJECT: renames OBJECT's sections of the
# functions listed in src/hottext.list (built with -ffunction-sections:
# .text.NAME, and GCC's clones .text.NAME.part.0 and the like) to
# .text.hot.NAME..., which every GNU link places together at the start of
# .text (tools/hottext.sh says why). Does nothing where OBJCOPY is missing:
# the library is the same, its text only laid out as compiled.
objcopy=$1 obj=$2
command -v "$objcopy" >/dev/null 2>&1 || exit 0
list=$(dirname "$0")/../src/hottext.list
renames=$(readelf -SW "$obj" | sed -n 's/^ *\[ *[0-9]*\] \(\.text\.[^ ]*\) .*/\1/p' |
    awk -v list="$list" 'BEGIN { while ((getline n < list) > 0) if (n !~ /^#/ && n != "") hot[n] = 1 }
        { name = substr($0, 7); base = name; sub(/\..*/, "", base)
          if (base in hot) printf " --rename-section %s=.text.hot.%s", $0, name }')
[ -z "$renames" ] || exec "$objcopy" $renames "$obj"
