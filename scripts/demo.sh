#!/usr/bin/env bash
# demo.sh: the main job, end to end, on a fresh machine: install, build, start a
# local cluster (a controller and 2 workers on loopback, state in .moat/), and run
# a batch analysis of a real corpus (the fortunes collection, Debian package
# "fortunes", BSD licence): one array job with a task per fortune file, each
# task counting texts and words and finding the file's most frequent long words,
# then a dependent job (--after) that runs only when all of them succeeded.
# Usage: scripts/demo.sh   (re-running it reuses the cluster; `bin/moat local down` stops it)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

scripts/install-deps.sh
make -j"$(nproc)" all >/dev/null

moat() { "$root/bin/moat" "$@"; }
export MOAT_DIR="$root/.moat"
moat local up --workers 2
moat nodes

corpus=/usr/share/games/fortunes
files=()
for f in "$corpus"/*; do
  case "$f" in *.dat|*.u8) continue ;; esac
  [ -f "$f" ] && files+=("$f")
done
n=${#files[@]}
[ "$n" -gt 0 ] || { echo "demo: no fortune files in $corpus" >&2; exit 1; }
list="$MOAT_DIR/demo-files.txt"
printf '%s\n' "${files[@]}" > "$list"
echo "demo: analysing $n files of $corpus as one array job of $n tasks"

# Task {index}: line {index}+1 of the list. Prints: file, texts, words, top words.
analyse='f=$(sed -n "$(( {index} + 1 ))p" '"$list"'); printf "%s\t" "$(basename "$f")";
  awk -v RS="%\n" "END { printf \"%d\t\", NR }" "$f";
  tr -cs "[:alpha:]" "\n" < "$f" | tr "[:upper:]" "[:lower:]" | awk "length >= 7" |
    sort | uniq -c | sort -rn | head -3 | awk "{ printf \"%s \", \$2 }";
  printf "\t%d\n" "$(wc -w < "$f")"'
job=$(moat submit --name fortunes-analysis --array "0-$((n - 1))" -- sh -c "$analyse")
summary=$(moat submit --name summary --after "$job" -- sh -c "echo all $n files analysed")
echo "demo: submitted array job $job and dependent job $summary"
moat wait "$job" "$summary"

echo
printf '%-14s %8s %9s  %s\n' FILE TEXTS WORDS "MOST FREQUENT LONG WORDS"
moat result "$job" | sort -t$'\t' -k2,2nr | awk -F'\t' '{ printf "%-14s %8d %9d  %s\n", $1, $2, $4, $3; t += $2; w += $4 } END { printf "%-14s %8d %9d\n", "total", t, w }'
echo
moat result "$summary"
moat queue --all | tail -n 3
