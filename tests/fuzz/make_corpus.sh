#!/usr/bin/env bash
# make_corpus.sh - regenerate the seed corpora in tests/fuzz/corpus/.
#
#   bash tests/fuzz/make_corpus.sh [BUILD_DIR]     (default: build)
#
# Needs BUILD_DIR/tools/branchsync and BUILD_DIR/tests/fuzz/corpus_gen.
# Two sources:
#  - the real CLI: a hub and a branch are created, paired, written to and
#    exchange files are exported both ways; the files, their pieces
#    (envelopes, change sets, changes) and the stored records are seeds;
#  - corpus_gen world: the deterministic world of fuzz_world.h, whose
#    exchange files and recorded session are signed by the keys the import
#    and session harnesses' hub knows, plus crafted adversarial imports.
# Re-run it when a wire or file format changes (the world's seeds then go
# stale: the import and session harnesses stop getting past verification).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-build}" && pwd)
cli=$build/tools/branchsync
gen=$build/tests/fuzz/corpus_gen
out=$here/corpus
crashes=$here/crashes
for x in "$cli" "$gen"; do
  [ -x "$x" ] || { echo "make_corpus: $x not built" >&2; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"

bs() { "$cli" "$@" >/dev/null; }
id_of() { "$cli" id -d "$1" | awk '{print $2}'; }

# ---- the CLI's nodes and files ----
bs init -d "$tmp/hq" --name hq --role hub --listen tcp://127.0.0.1:7500
bs init -d "$tmp/riga" --name riga
bs peer add riga tcp://127.0.0.1:7501 "$(id_of "$tmp/riga")" -d "$tmp/hq"
bs peer add hq tcp://127.0.0.1:7500 "$(id_of "$tmp/hq")" -d "$tmp/riga"
bs collection prices --policy priority -d "$tmp/hq"
bs collection notes --policy manual -d "$tmp/hq"
bs put items 1 '{"name":"bolt","qty":5,"price":0.25,"ok":true,"note":null}' -d "$tmp/hq"
bs put items 2 '{"name":"nut","qty":-3,"tags":"a,b"}' -d "$tmp/hq"
bs put prices p1 '{"eur":1.25,"usd":1.5}' -d "$tmp/hq"
bs put notes n1 '{"text":"hello"}' -d "$tmp/hq"
bs export riga "$tmp/hq-to-riga.bsx" -d "$tmp/hq"
bs import "$tmp/hq-to-riga.bsx" -d "$tmp/riga"
bs put items 1 '{"qty":7}' -d "$tmp/riga"
bs put items 3 '{"name":"washer","big":9007199254740993,"r":-1.5e-7}' -d "$tmp/riga"
bs del items 2 -d "$tmp/riga"
bs put notes n1 '{"text":"\u00f5un \ud83c\udf4e"}' -d "$tmp/riga"
bs put items 1 '{"qty":9}' -d "$tmp/hq"
bs export hq "$tmp/riga-to-hq.bsx" -d "$tmp/riga"
bs import "$tmp/riga-to-hq.bsx" -d "$tmp/hq"
bs export riga "$tmp/hq-to-riga-2.bsx" -d "$tmp/hq"
# move-in: a record the hub gives riga in an owner-scoped collection; riga
# asks for it (its envelope's wants) and the hub's next file carries record
# snapshots (frame 4)
bs collection orders --scope owner --owner-field office -d "$tmp/hq"
bs put orders o1 '{"office":"riga","n":1,"t":"x"}' -d "$tmp/hq"
bs export riga "$tmp/hq-to-riga-3.bsx" -d "$tmp/hq"
bs import "$tmp/hq-to-riga-3.bsx" -d "$tmp/riga"
bs export hq "$tmp/riga-to-hq-2.bsx" -d "$tmp/riga"
bs import "$tmp/riga-to-hq-2.bsx" -d "$tmp/hq"
# a set of two buckets (riga's order and one of no office): riga, which
# announced set summaries, gets it in summary form (protocol.md 2.10)
printf '{"id":"o2","office":"riga","n":2}\n{"id":"o3","office":"nobody","n":3}\n' \
  >"$tmp/orders.jsonl"
bs load orders "$tmp/orders.jsonl" -d "$tmp/hq"
bs export riga "$tmp/hq-to-riga-4.bsx" -d "$tmp/hq"
# a seed (snapshot bootstrap): a fresh branch, only paired; the hub's
# snapshots go in signed batches (frame 5)
bs init -d "$tmp/tartu" --name tartu
bs peer add tartu tcp://127.0.0.1:7502 "$(id_of "$tmp/tartu")" -d "$tmp/hq"
bs export tartu "$tmp/hq-seed-tartu.bsx" --seed -d "$tmp/hq"

"$gen" split "$tmp/hq-to-riga.bsx" "$out" cli-hq-to-riga
"$gen" split "$tmp/riga-to-hq.bsx" "$out" cli-riga-to-hq
"$gen" split "$tmp/hq-to-riga-2.bsx" "$out" cli-hq-to-riga-2
"$gen" split "$tmp/riga-to-hq-2.bsx" "$out" cli-riga-to-hq-2
"$gen" split "$tmp/hq-to-riga-4.bsx" "$out" cli-hq-to-riga-4
"$gen" split "$tmp/hq-seed-tartu.bsx" "$out" cli-hq-seed-tartu
"$gen" records "$tmp/hq" "$out" cli-hq
"$gen" records "$tmp/riga" "$out" cli-riga

# ---- the deterministic world ----
mkdir -p "$crashes"
"$gen" world "$out" "$crashes"

# ---- configuration files ----
mkdir -p "$out/config"
cp "$tmp/hq/branchsync.conf" "$out/config/cli-hub.conf"
cp "$tmp/riga/branchsync.conf" "$out/config/cli-branch.conf"
printf '[node]\nlisten = tcp://0.0.0.0:7400\n[log]\nlevel = debug\n' \
  >"$out/config/listen-debug.conf"
printf '; comment\n# comment\n[store]\nmap_size_mb=1\nmax_map_size_mb = 1073741824\n[sync]\nmax_skew_s=86400\nretention_days=36500\n' \
  >"$out/config/limits.conf"
# A refusal's message was garbled (fixed): these live in crashes/ as
# regression inputs.
mkdir -p "$crashes/config"
printf '[sync]\nmax_skew_s = 0\n' >"$crashes/config/regress-bad-value.conf"
printf '[node]\nname = x\n' >"$crashes/config/regress-unknown-key.conf"
printf '[node\n' >"$out/config/syntax.conf"
printf '[node\nlisten = x\n' >"$crashes/config/regress-syntax-then-unknown.conf"
# bs_config_save wrote what bs_config_load could not read back (found by
# fuzz_config, fixed): a value inih reads as an inline comment ...
printf '[node]\nlisten=x\n y ;z\n' >"$crashes/config/regress-roundtrip-inline-comment.conf"
# ... and a 191-byte endpoint: its line fits inih's 200-byte buffer as
# "listen=" but not as "listen = ".
printf '[node]\nlisten=tcp://%s:7400\n' "$(printf 'a%.0s' $(seq 180))" \
  >"$crashes/config/regress-roundtrip-long-listen.conf"
printf '\xef\xbb\xbf[node]\r\nlisten = ipc:///tmp/x ; inline\r\n  continued\r\n' \
  >"$out/config/bom-crlf.conf"

# ---- JSON objects (put/load) ----
mkdir -p "$out/json"
j() { printf '%s' "$2" >"$out/json/$1.json"; }
j record '{"id":"a1","name":"bolt","qty":5,"price":0.25,"ok":true,"off":false,"note":null}'
j escapes '{"t":"\"\\\/\b\f\n\r\t\u0001\u00e9\ud83d\ude00"}'
j numbers '{"a":0,"b":-0,"c":-0.0,"d":1e308,"e":1E-5,"f":9223372036854775807,"g":-9223372036854775808,"h":0.1}'
j nested '{"a":{"b":1}}'
j array '[1,2,3]'
j dup '{"a":1,"a":2}'
j ws $' \t\r\n{ "a" : "b" , "c" : [ ] } \n'
j bad-id '{"id":5}'
j empty '{}'
j long-name "{\"$(printf 'n%.0s' $(seq 128))\":1}"

# ---- CSV files (load --format csv); the first byte picks the options:
# bits 0-1 the delimiter (, ; tab |), 2-3 --types (none, n:number,
# b:bool+n:number, a:string), 4 --id-field key, 5 --on-error skip ----
mkdir -p "$out/csv"
c() { printf "$2" >"$out/csv/$1.csv"; }
c plain '\004id,n,a\nx1,1,hello\nx2,-2.5e3,"a ""quoted"", cell"\n'
c bom-crlf '\000\357\273\277id,a\r\nx,"multi\r\nline"\r\n\r\ny,\r\n'
c semicolon '\001id;n;a\nx;"1;2";\n'
c typed '\010id,b,n\nx,TRUE,0\ny,false,\nz,yes,x\n'
c skip-bad '\044id,n\nx,1\ny,zz\nz\n,4\nw,5,6\n'
c key-column '\020key,id2,v\nk1,a,b\n'
c unbalanced '\000id,a\nx,"open\ny,1\n'
c bad-header '\000id,,id\n'

# A header naming the ID column twice gave objects with two "id" keys
# (found by fuzz_csv, fixed).
mkdir -p "$crashes/csv"
printf '\000id,id\n\022,id\n' >"$crashes/csv/regress-duplicate-id-column"

# ---- CommerceML documents (cml import); the first byte's low bit picks
# --on-error skip: the test fixtures, and crafted bad ones ----
mkdir -p "$out/cml"
fx=$here/../fixtures/cml
for f in import offers orders import-1251 orders-1251; do
  { printf '\001'; cat "$fx/$f.xml"; } >"$out/cml/$f.xml"
done
x() { printf "$2" >"$out/cml/$1.xml"; }
x no-id '\001<?xml version="1.0"?>\n<КоммерческаяИнформация ВерсияСхемы="2.08"><Каталог><Товары><Товар><Артикул>a</Артикул></Товар><Товар><Ид>b</Ид></Товар></Товары></Каталог></КоммерческаяИнформация>\n'
x entity '\000<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY e "x">]>\n<КоммерческаяИнформация>&e;</КоммерческаяИнформация>\n'
x bad-utf8 '\000<?xml version="1.0"?>\n<КоммерческаяИнформация><a>\377</a></КоммерческаяИнформация>\n'
x bad-number '\001<?xml version="1.0"?>\n<КоммерческаяИнформация><ПакетПредложений><Предложения><Предложение><Ид>o</Ид><Цены><Цена><ИдТипаЦены>t</ИдТипаЦены><ЦенаЗаЕдиницу>1,2,3</ЦенаЗаЕдиницу></Цена></Цены></Предложение></Предложения></ПакетПредложений></КоммерческаяИнформация>\n'

total=$(du -sk "$out" | awk '{print $1}')
files=$(find "$out" -type f | wc -l)
echo "make_corpus: $files files, ${total} KiB in $out"
