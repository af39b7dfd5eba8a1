#!/usr/bin/env bash
# bench/cml.sh - `branchsync cml import` of a generated CommerceML 2 catalog:
# time and peak RssAnon for N goods, for each N given.
#
#     bench/cml.sh [N...]          (default: 10000 100000)
#
# Environment:
#   BENCH_DIR  parent of the scratch directory (default: /tmp)
#   BUILD_DIR  CMake build directory (default: <repo>/build)
#
# For each N: writes import.xml (a classifier of 20 groups, 3 dictionary
# properties of 10 values each, then N goods with Артикул, Наименование,
# Штрихкод, a group, two property values, a tax rate and a description;
# about 900 bytes a good), `init`s a fresh hub and imports the file, timed
# from the shell around the whole process.  RssAnon (anonymous resident
# memory: the heap, not the mapped input nor the LMDB map) is read from
# /proc/PID/status every 10 ms and the peak kept.  Prints one line per N
# and the ratio of the peaks (target: the largest within 2x of the
# smallest, docs/performance.md).  The scratch directory is removed on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
BS=$BUILD/tools/branchsync
[ $# -gt 0 ] || set -- 10000 100000
for n in "$@"; do
    case $n in '' | *[!0-9]* | 0) echo "usage: bench/cml.sh [N...]" >&2; exit 2 ;; esac
done
if [ ! -x "$BS" ]; then
    cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$BUILD" -j2 --target branchsync >/dev/null
fi
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/bs-cml.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

gen() { # gen N FILE
    python3 - "$1" "$2" <<'PY'
import sys
n, path = int(sys.argv[1]), sys.argv[2]
with open(path, "w", encoding="utf-8") as f:
    w = f.write
    w('<?xml version="1.0" encoding="UTF-8"?>\n'
      '<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2" '
      'ВерсияСхемы="2.08" ДатаФормирования="2026-12-01T01:00:00">\n'
      '<Классификатор><Ид>cls</Ид><Наименование>Классификатор</Наименование>'
      '<Группы>\n')
    for g in range(20):
        w(f'<Группа><Ид>grp-{g:02d}</Ид><Наименование>Группа {g}'
          '</Наименование></Группа>\n')
    w('</Группы><Свойства>\n')
    for p in range(3):
        w(f'<Свойство><Ид>prop-{p}</Ид><Наименование>Свойство {p}'
          '</Наименование><ТипЗначений>Справочник</ТипЗначений>'
          '<ВариантыЗначений>')
        for v in range(10):
            w(f'<Справочник><ИдЗначения>val-{p}-{v}</ИдЗначения>'
              f'<Значение>Значение {p}.{v}</Значение></Справочник>')
        w('</ВариантыЗначений></Свойство>\n')
    w('</Свойства></Классификатор>\n<Каталог><Ид>cat</Ид>'
      '<ИдКлассификатора>cls</ИдКлассификатора><Наименование>Каталог'
      '</Наименование><Товары>\n')
    for i in range(n):
        w(f'<Товар><Ид>{i:08x}-55bc-11d9-848a-00112f43529a</Ид>'
          f'<Штрихкод>46{i:011d}</Штрихкод><Артикул>АРТ-{i}</Артикул>'
          f'<Наименование>Товар номер {i} «Образец»</Наименование>'
          '<БазоваяЕдиница Код="796">шт</БазоваяЕдиница>'
          f'<Группы><Ид>grp-{i % 20:02d}</Ид></Группы>'
          '<Описание>Описание товара для проверки объёма импорта, '
          'строка текста средней длины.</Описание>'
          '<ЗначенияСвойств>'
          f'<ЗначенияСвойства><Ид>prop-0</Ид><Значение>val-0-{i % 10}'
          '</Значение></ЗначенияСвойства>'
          f'<ЗначенияСвойства><Ид>prop-1</Ид><Значение>val-1-{i % 7}'
          '</Значение></ЗначенияСвойства></ЗначенияСвойств>'
          '<СтавкиНалогов><СтавкаНалога><Наименование>НДС</Наименование>'
          '<Ставка>20</Ставка></СтавкаНалога></СтавкиНалогов></Товар>\n')
    w('</Товары></Каталог>\n</КоммерческаяИнформация>\n')
PY
}

peak_of() { # run the command, print "SECONDS PEAK_KIB" on fd 3
    local t0 t1 pid peak=0 kb
    t0=$(date +%s.%N)
    "$@" &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        kb=$(awk '/^RssAnon:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
        [ -n "$kb" ] && [ "$kb" -gt "$peak" ] && peak=$kb
        sleep 0.01
    done
    wait "$pid"
    t1=$(date +%s.%N)
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') $peak" >&3
}

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
first=""
last=""
for n in "$@"; do
    f=$WORK/import-$n.xml
    gen "$n" "$f"
    "$BS" init -d "$WORK/node-$n" --name hq --role hub >/dev/null
    res=$(peak_of "$BS" -d "$WORK/node-$n" cml import "$f" -q 3>&1 >/dev/null)
    secs=${res% *}
    kib=${res#* }
    size=$(stat -c %s "$f")
    printf '%8d goods  %7.1f MiB file  %6s s  %8.0f goods/s  peak RssAnon %6.1f MiB\n' \
        "$n" "$(awk -v b="$size" 'BEGIN {print b / 1048576}')" "$secs" \
        "$(awk -v n="$n" -v s="$secs" 'BEGIN {print (s > 0) ? n / s : 0}')" \
        "$(awk -v k="$kib" 'BEGIN {print k / 1024}')"
    [ -n "$first" ] || first=$kib
    last=$kib
    rm -rf "$f" "$WORK/node-$n"
done
echo "peak RssAnon ratio, last/first: $(awk -v a="$last" -v b="$first" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}') (target <= 2)"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
