#!/usr/bin/env python3
"""fortunes-corpus.py OUT.jsonl: the fortunes collection (Debian package
"fortunes", BSD licence) as JSON Lines, one fortune per line:
{"id": "FILE#N", "text": "..."} with the fortune's lines joined by spaces.
Files that are not valid UTF-8 are decoded with replacement characters."""
import json
import os
import sys

SRC = "/usr/share/games/fortunes"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: fortunes-corpus.py OUT.jsonl")
    n = 0
    with open(sys.argv[1], "w", encoding="utf-8") as out:
        for name in sorted(os.listdir(SRC)):
            path = os.path.join(SRC, name)
            if "." in name or not os.path.isfile(path):
                continue
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", errors="replace")
            for i, chunk in enumerate(text.split("\n%\n")):
                doc = " ".join(line.strip() for line in chunk.strip("%\n").splitlines() if line.strip())
                if doc:
                    out.write(json.dumps({"id": f"{name}#{i}", "text": doc}, ensure_ascii=False) + "\n")
                    n += 1
    print(f"{n} fortunes written to {sys.argv[1]}", file=sys.stderr)


if __name__ == "__main__":
    main()
